"""The domain's PBX commands carried out over ARI, as the recorded application did them
(``tests/fixtures/transcripts/a_inbound_noanswer_then_answer.ari-rest.txt``):

answer the caller; one mixing bridge per call holding the caller (made when first needed); music on hold on the
bridge; prompts played on the caller with our own playback id; legs originated with *our* channel id
(``POST /channels/{leg}``, app = ours, appArgs ``agent,<call>,<leg>``, the caller's caller ID) so a retry is
idempotent (409: already ringing); an answered leg joins the bridge and carries the moment it did in its channel
variable ``B24_ANSWERED`` (unix seconds), so that a bridge that adopts the conversation after a restart or a
takeover counts the talk from the real answer (``bridge.recovery``); recordings are wav files.

A command meets a link that is down (a reconnect takes a second or two) by waiting for it: twice
``asterisk.reconnect_max_delay`` (two reconnect attempts at the longest back-off), at least ``LINK_WAIT_FLOOR``
and at most ``LINK_WAIT_CAP`` seconds; it is tried again after a transport failure (status 0) within that time.
Waiting never blocks other calls (each call has its own executor task). A command that only makes sense with the
caller on the line is dropped once the caller is known to have hung up. A command that fails for good is reported
as what it means for the call: a leg not originated or not joined ends FAILED, a prompt not played has finished.

A ring timeout's ``CancelLeg(unless_answered=True)`` is not sent for a leg the PBX has already seen answer: the
answer, on its way to the core, wins the call. A leg hung up by a cancel before it joined the caller did not talk,
whatever the PBX reports: its end is reported FAILED (:meth:`CallCommands.reviewed`) and a ``ConnectLeg`` for it
is not tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from bridge.config import AsteriskSettings
from bridge.dialrules import BadPhoneNumber
from bridge.domain.commands import (
    AnswerCaller,
    CancelLeg,
    ConnectLeg,
    HangupCaller,
    PbxCommand,
    PlayPrompt,
    RecordVoicemail,
    RingAgent,
    RingNumber,
    StartMusic,
    StartRecording,
    StopMusic,
    StopPrompt,
)
from bridge.domain.events import CallerHungUp, LegEnded, LegOutcome, PromptFinished
from bridge.logs import HotLogger
from bridge.pbx.events import PbxError, PbxEvent
from bridge.pbx.outcomes import EndpointTemplate
from bridge.pbx.translate import AriTranslator

log = HotLogger(__name__)

Request = Callable[..., Awaitable[Any]]
LinkReady = Callable[[float], Awaitable[bool]]
"""Wait up to so many seconds for the link to be up; True if it is."""

LINK_WAIT_FLOOR = 2.0
LINK_WAIT_CAP = 10.0
"""The longest a command waits for the link (a caller should not wait in silence longer)."""
ATTEMPTS = 3
"""Tries of one command after transport failures (within the wait)."""
HUNG_UP_KEPT = 10_000
NEEDS_CALLER = (AnswerCaller, StartMusic, PlayPrompt, RingAgent, RingNumber, ConnectLeg, StartRecording,
                RecordVoicemail)  # fmt: skip
"""Commands pointless once the caller has hung up (cancels and hang-ups still run)."""

DIALLABLE = re.compile(r"[0-9]{1,32}")
ANSWERED_VAR = "B24_ANSWERED"
"""The channel variable on an agent's leg: when it joined the caller (unix seconds, as text)."""
CHANNEL_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
CALLER_NUMBER = re.compile(r"\+?[0-9*#]{1,32}")
HANGUP_REASONS = frozenset({
    "normal", "busy", "congestion", "no_answer", "timeout", "rejected", "unallocated", "normal_unspecified",
    "number_incomplete", "codec_mismatch", "interworking", "failure", "answered_elsewhere",
})  # fmt: skip


@dataclass
class CallMedia:
    """What the link made on the PBX for one call."""

    bridge: str | None = None
    music: bool = False
    prompts: dict[str, str] = field(default_factory=dict)
    """Prompt id -> playback id."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    joined: set[str] = field(default_factory=set)
    """Channels added to the bridge (the caller, legs)."""
    cancelled: set[str] = field(default_factory=set)
    """Legs hung up by a cancel before they joined."""


class CallCommands:
    """Carries out PBX commands for calls; ``request`` is :meth:`AriRest.request` of the live session and
    ``ready`` waits for the link (None: never wait, one try); ``up`` says whether it is up now (then no wait is
    asked for: most commands)."""

    def __init__(
        self,
        settings: AsteriskSettings,
        translator: AriTranslator,
        request: Request,
        emit: Callable[[PbxEvent], None],
        ready: LinkReady | None = None,
        up: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.translator = translator
        self.request = request
        self.emit = emit
        self.ready = ready
        self.up = up or _unknown
        wait = min(max(2 * settings.reconnect_max_delay, LINK_WAIT_FLOOR), LINK_WAIT_CAP)
        self.link_wait = wait if ready is not None else 0.0
        self.agent_endpoint = EndpointTemplate(settings.agent_endpoint)
        self.trunk_endpoint = EndpointTemplate(settings.trunk_endpoint, "number")
        self.calls: dict[str, CallMedia] = {}
        self.hung_up: dict[str, None] = {}
        """Calls whose caller has hung up, the latest ``HUNG_UP_KEPT`` (oldest first)."""
        self._playbacks = 0

    async def execute(self, call: str, command: PbxCommand) -> None:
        """Carry out ``command`` once the link is up; raises the last :class:`PbxError` after reporting it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.link_wait
        for attempt in range(1, ATTEMPTS + 1):
            if self.ready is not None and not self.up():
                await self.ready(deadline - loop.time())
            if call in self.hung_up and isinstance(command, NEEDS_CALLER):
                log.info("pbx.command_dropped", call_id=call, command=type(command).__name__, reason="caller gone")
                return
            try:
                await self._carry_out(call, command)
                return
            except PbxError as exc:
                if exc.status != 0 or attempt == ATTEMPTS or loop.time() >= deadline:
                    await self._failed(call, command)
                    raise
                log.info("pbx.command_retry", call_id=call, command=type(command).__name__, error=exc.body)

    def reviewed(self, event: PbxEvent) -> PbxEvent:
        """Every event of the link before it goes out: note callers who hung up; the end of a leg a cancel hung up
        before it joined is FAILED (no conversation), though it answered."""
        if isinstance(event.event, CallerHungUp) and event.call is not None:
            self.hung_up[event.call] = None
            if len(self.hung_up) > HUNG_UP_KEPT:
                del self.hung_up[next(iter(self.hung_up))]
        ended, media = event.event, self.calls.get(event.call or "")
        if (
            isinstance(ended, LegEnded)
            and ended.outcome is LegOutcome.HANGUP
            and media
            and ended.leg in media.cancelled
        ):
            return replace(event, event=LegEnded(ended.leg, LegOutcome.FAILED))
        return event

    async def _failed(self, call: str, command: PbxCommand) -> None:
        """Tell the core what a command that failed for good means for the call."""
        match command:
            case RingAgent(leg=leg) | RingNumber(leg=leg):
                self._emit_call(call, LegEnded(leg, LegOutcome.FAILED))
            case ConnectLeg(leg=leg):
                self._emit_call(call, LegEnded(leg, LegOutcome.FAILED))
                with contextlib.suppress(PbxError):  # the agent must not stay on a line that leads nowhere
                    await self.request("channels", "hangup", channelId=leg, reason="normal")
            case PlayPrompt(prompt=prompt, media=media):
                self._emit_call(call, PromptFinished(prompt, failed=media))
            case _:
                pass

    def _emit_call(self, call: str, event: LegEnded | PromptFinished) -> None:
        self.emit(PbxEvent(call, event, self.translator.linkedid(call)))

    async def _carry_out(self, call: str, command: PbxCommand) -> None:
        match command:
            case AnswerCaller():
                await self.request("channels", "answer", channelId=call)
            case StartMusic(moh_class=moh_class):
                bridge = await self._bridge(call)
                await self.request(
                    "bridges", "startMoh", bridgeId=bridge, mohClass=moh_class or self.settings.moh_class
                )
                self.calls[call].music = True
            case StopMusic():
                await self._stop_music(call)
            case PlayPrompt(prompt=prompt, media=uri):
                await self._play(call, prompt, uri)
            case StopPrompt(prompt=prompt):
                playback = self.calls[call].prompts.pop(prompt, None) if call in self.calls else None
                if playback is not None:
                    self.translator.forget_playback(playback)
                    await _tolerate(self.request("playbacks", "stop", playbackId=playback), 404)
            case RingAgent(leg=leg, ext=ext, timeout=timeout):
                await self._ring(call, leg, self.agent_endpoint.format(ext), timeout)
            case RingNumber(leg=leg, number=number, timeout=timeout):
                try:  # the one place a mobile, a forward or a click-to-call's client becomes the trunk's digits
                    dialled = self.settings.dial_rules.dialled(number)
                except BadPhoneNumber as exc:
                    self._refuse(call, leg, str(exc))
                    return
                if not DIALLABLE.fullmatch(dialled):  # the rules give digits only; never let anything else out
                    self._refuse(call, leg, "the number is not plain digits")
                    return
                await self._ring(call, leg, self.trunk_endpoint.format(dialled), timeout)
            case CancelLeg(leg=leg, unless_answered=unless_answered):
                await self._cancel(call, leg, unless_answered)
            case ConnectLeg(leg=leg) if leg in self.calls.get(call, CallMedia()).cancelled:
                log.info("leg.not_joined", call_id=call, leg=leg, reason="hung up by a cancel before it joined")
                self._emit_call(call, LegEnded(leg, LegOutcome.FAILED))
            case ConnectLeg(leg=leg):
                came_by_itself = leg not in self.translator.legs  # not originated by us: an intercepting phone
                self.translator.expect_leg(leg, call, answered=True)
                if came_by_itself:  # it entered Stasis still ringing; a bridge does not answer it
                    await self.request("channels", "answer", channelId=leg)
                bridge = await self._bridge(call)
                await self._stop_music(call)
                await self.request("bridges", "addChannel", bridgeId=bridge, channel=leg)
                self.calls[call].joined.add(leg)
                await self._note_answer(call, leg)
            case StartRecording(name=name):
                bridge = await self._bridge(call)
                self.translator.expect_recording(name, call)
                await self.request("bridges", "record", bridgeId=bridge, name=name, format="wav")
            case RecordVoicemail(name=name, max_seconds=max_seconds):
                self.translator.expect_recording(name, call)
                await self.request("channels", "record", channelId=call, name=name, format="wav",
                                   maxDurationSeconds=max(1, math.ceil(max_seconds)), beep=True,
                                   terminateOn="#")  # fmt: skip
            case HangupCaller(reason=reason):
                reason = reason if reason in HANGUP_REASONS else "normal"
                await _tolerate(self.request("channels", "hangup", channelId=call, reason=reason), 404)
                await self.release(call)
            case _:
                log.error("pbx.unsupported_command", call_id=call, command=type(command).__name__)

    async def release(self, call: str) -> None:
        """The caller is gone: destroy the call's bridge (which ends a bridge recording) and forget it."""
        media = self.calls.pop(call, None)
        if media is not None and media.bridge is not None:
            await _tolerate(self.request("bridges", "destroy", bridgeId=media.bridge), 404)

    async def _cancel(self, call: str, leg: str, unless_answered: bool) -> None:
        state = self.translator.legs.get(leg)
        if unless_answered and state is not None and state.answered:
            log.info("leg.kept", call_id=call, leg=leg, reason="answered before the ring timeout's cancel went out")
            return
        media = self.calls.setdefault(call, CallMedia())
        if leg not in media.joined:
            media.cancelled.add(leg)
        await _tolerate(self.request("channels", "hangup", channelId=leg, reason="normal"), 404)

    async def _bridge(self, call: str) -> str:
        media = self.calls.setdefault(call, CallMedia())
        async with media.lock:
            if media.bridge is None:
                bridge = await self.request("bridges", "create", type="mixing", name=f"call-{call}")
                media.bridge = str(bridge["id"])
            if call not in media.joined:  # a retry after a broken connection adds the caller still missing
                await self.request("bridges", "addChannel", bridgeId=media.bridge, channel=call)
                media.joined.add(call)
            return media.bridge

    async def _note_answer(self, call: str, leg: str) -> None:
        """Leave the moment ``leg`` joined on the PBX, which keeps it past this process: whoever adopts the call
        counts the talk from there. Not having it only costs that count: a failure does not fail the join."""
        try:
            await self.request("channels", "setChannelVar", channelId=leg, variable=ANSWERED_VAR,
                               value=f"{time.time():.3f}")  # fmt: skip
        except PbxError as exc:
            log.info("leg.answer_not_noted", call_id=call, leg=leg, error=str(exc))

    async def _stop_music(self, call: str) -> None:
        media = self.calls.get(call)
        if media is not None and media.music and media.bridge is not None:
            media.music = False  # before the request: a second stop meanwhile (the join's) sends nothing more
            try:
                await _tolerate(self.request("bridges", "stopMoh", bridgeId=media.bridge), 404, 409)
            except PbxError:
                media.music = True  # not stopped: a retry of the command (a link that broke under it) sends it again
                raise

    async def _play(self, call: str, prompt: str, uri: str) -> None:
        media = self.calls.setdefault(call, CallMedia())
        self._playbacks += 1
        playback = f"{call}-{self._playbacks}"
        media.prompts[prompt] = playback
        self.translator.expect_playback(playback, call, prompt)
        try:
            await self.request("channels", "playWithId", channelId=call, playbackId=playback, media=uri)
        except PbxError:
            self.translator.forget_playback(playback)
            media.prompts.pop(prompt, None)
            raise

    async def _ring(self, call: str, leg: str, endpoint: str, ring_for: float) -> None:
        if not CHANNEL_ID.fullmatch(leg):
            self._refuse(call, leg, "the leg id is not a plain channel id")
            return
        caller = self.translator.callers.get(call)
        caller_id = _caller_id(caller.name, caller.number) if caller is not None else None
        self.translator.expect_leg(leg, call, local=endpoint.lower().startswith("local/"))
        try:
            await self.request("channels", "originateWithId", channelId=leg, endpoint=endpoint,
                               app=self.settings.app, appArgs=f"agent,{call},{leg}", callerId=caller_id,
                               timeout=max(1, math.ceil(ring_for)))  # fmt: skip
        except PbxError as exc:
            if exc.status == 409:
                log.info("leg.exists", call_id=call, leg=leg)
                return
            self.translator.legs.pop(leg, None)
            if exc.status == 500 and ALLOCATION_FAILED in exc.body:  # e.g. a PJSIP phone with no registration
                log.info("leg.unavailable", call_id=call, leg=leg, endpoint=endpoint)
                self._emit_call(call, LegEnded(leg, LegOutcome.UNAVAILABLE))
                return
            raise
        log.info("leg.ringing", call_id=call, leg=leg, endpoint=endpoint)

    def _refuse(self, call: str, leg: str, reason: str) -> None:
        log.error("pbx.command_refused", call_id=call, leg=leg, reason=reason)
        self.emit(PbxEvent(call, LegEnded(leg, LegOutcome.FAILED), self.translator.linkedid(call)))


ALLOCATION_FAILED = "Allocation failed"
"""What ARI answers (500) when Asterisk cannot create the channel: on Asterisk 20 a PJSIP endpoint without a
registered contact, so the leg never exists and no event follows."""


def _caller_id(name: str, number: str) -> str | None:
    """``"Иван Петров" <79161234567>``, or None when there is no usable number.

    Both come from the caller (a trunk passes on whatever the far end claims): a number that is not digits
    (``+``, ``*``, ``#`` allowed) is not passed on, and the name loses quotes, angle brackets and control characters.
    """
    if not CALLER_NUMBER.fullmatch(number):
        return None
    clean = "".join(ch for ch in name if ch not in '"<>' and unicodedata.category(ch) != "Cc").strip()[:80]
    return f'"{clean}" <{number}>' if clean else f"<{number}>"


def _unknown() -> bool:
    return False


async def _tolerate(pending: Awaitable[Any], *statuses: int) -> None:
    """Await a request whose failure with one of ``statuses`` means "already done" (e.g. 404 gone)."""
    try:
        await pending
    except PbxError as exc:
        if exc.status not in statuses:
            raise
