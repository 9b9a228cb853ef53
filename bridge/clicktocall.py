"""Click-to-call (ONEXTERNALCALLSTART) and callback requests (ONEXTERNALCALLBACKSTART), carried out over ARI.

Click-to-call: Bitrix24 has already registered the call (TYPE 1) and opened the employee's card. We ring the
employee's own device first; when they pick up, we dial the client through the trunk and bridge the two, record
the conversation, and finish Bitrix24's CALL_ID with the talk time and the outcome. The employee's channel is
both the "call" and its first leg for the ARI link (so the bridge holds it), and the CRM side is the observed-call
machine with ``adopt_call_id`` (never register, finish that CALL_ID; CALL_LIST_ID stays with it in Bitrix24).

Callback: we dial the client first and, once they answer, they enter the Stasis application as an inbound call on
the line, so the line's scheme (its queue) takes them like any caller; the CRM call is registered as TYPE 4.

The client's number goes through ``asterisk.dial_rules`` where its endpoint is built (the ARI commands for the
click-to-call's client leg, :meth:`ClickToCallDesk.call_back` for a callback). A click-to-call whose number the rules
cannot turn into digits is checked here first: Bitrix24's CALL_ID is finished at once as 404 with the reason in
FAILED_REASON, and nothing is originated (not even the employee's phone).

With several bridges on one portal (a shared PostgreSQL journal) every bridge gets each pushed click-to-call; only
the one :mod:`bridge.leadership.claims` picks (the PBX with the employee's phone) carries it out.

After a restart, :meth:`ClickToCallDesk.resume` carries on a click-to-call the dead process ran, from what the PBX
still has of it (``bridge.recovery.clicktocall``); its legs are never hung up as orphans.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from bridge.config import Settings
from bridge.crm.inbound import CallbackRequest, ClickToCall, Parsed, Rejected
from bridge.dialrules import BadPhoneNumber
from bridge.domain.commands import CancelLeg, ConnectLeg, HangupCaller, RingAgent, RingNumber, StartRecording
from bridge.domain.events import (
    Direction,
    LegAnswered,
    LegEnded,
    LegOutcome,
    ObservedAnswered,
    ObservedEnded,
    ObservedRecording,
    ObservedStarted,
    RecordingReady,
)
from bridge.domain.scheme import Plan
from bridge.journal.rows import CallRow
from bridge.leadership.claims import ClickToCallClaims
from bridge.logs import bind_call
from bridge.pbx.events import PbxEvent, StasisEntered
from bridge.pbx.outcomes import EndpointTemplate
from bridge.pbx.translate import CALLBACK_PREFIX
from bridge.recovery.clicktocall import remains, request_of
from bridge.recovery.view import PbxView

if TYPE_CHECKING:
    from bridge.dispatch import Dispatcher

log = structlog.get_logger(__name__)

EMPLOYEE_RINGS = 6
"""How long the employee's own phone rings before the click-to-call gives up, in the plan's rings (30 s at 5 s)."""
CLIENT_RINGS = 9
"""How long the client's phone rings (click-to-call and callbacks), in rings (45 s at 5 s)."""
DIALSTATUS = {
    LegOutcome.NO_ANSWER: "NOANSWER",
    LegOutcome.BUSY: "BUSY",
    LegOutcome.UNAVAILABLE: "CHANUNAVAIL",
    LegOutcome.CONGESTION: "CONGESTION",
    LegOutcome.REJECTED: "NOANSWER",
    LegOutcome.FAILED: "CHANUNAVAIL",
}
EARLY_KEPT = 1000
"""At most so many click-to-calls answered before recovery's first look are remembered for it."""
FAILED_REASON_LIMIT = 250
"""FAILED_REASON is shown in the call's statistics: a sentence, not a log."""


class Originator(Protocol):
    async def originate(
        self,
        endpoint: str,
        channel_id: str,
        app_args: Any,
        caller_id: str = "",
        timeout: float = 30.0,
        variables: Any = None,
    ) -> dict[str, Any]: ...

    def take_over(self, call: str, legs: Mapping[str, bool], *, bridge: str = "", recording: str = "") -> None: ...


class Extensions(Protocol):
    def ext_for(self, user_id: int) -> str | None: ...


@dataclass
class _Session:
    """One click-to-call: the employee's leg is the key; the client's leg follows once they pick up."""

    key: str
    request: ClickToCall
    ext: str
    client_leg: str = ""
    answered: bool = False
    recording: str = ""
    ended: bool = False
    started: float = field(default_factory=time.monotonic)


class ClickToCallDesk:
    def __init__(self, settings: Settings, ari: Originator, directory: Extensions) -> None:
        self.settings = settings
        self.ari = ari
        self.directory = directory
        self.sessions: dict[str, _Session] = {}
        self._serial = itertools.count(1)
        self._run = f"{int(time.time()):x}"
        self.dispatcher: Dispatcher | None = None
        self._pending: set[asyncio.Future[None]] = set()
        self._answered_early: set[str] = set()
        self.claims: ClickToCallClaims | None = None
        """With several bridges on the portal: which of them carries out a click-to-call."""

    def attach(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        dispatcher.foreign = self.owns_event

    # -- requests from Bitrix24 ---------------------------------------------------------------------------

    async def on_event(self, request: ClickToCall | CallbackRequest) -> None:
        """A pushed event: answered at once (Bitrix24 does not wait long, nor retry); the PBX work follows."""
        if isinstance(request, CallbackRequest):
            self._later(self.call_back(request))
        elif self.claims is not None:
            self._later(self.take(request))
        else:
            self.start(request)

    async def on_parsed(self, parsed: Parsed) -> None:
        if isinstance(parsed, Rejected):
            log.warning("clicktocall.rejected", reason=parsed.reason)
        elif isinstance(parsed, ClickToCall):
            self.start(parsed)  # pulled from the application's one offline queue: no other bridge has it
        else:
            await self.call_back(parsed)

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def take(self, request: ClickToCall) -> None:
        """Carry out ``request`` if this bridge is the one to (:mod:`bridge.leadership.claims`, with several
        bridges on the portal), else leave it to the bridge that is."""
        if self.claims is None:
            self.start(request)
            return
        ext = self.directory.ext_for(request.user_id)
        verdict = await self.claims.decide(request.call_id, ext, request.line)
        if not verdict.act:
            log.info("clicktocall.left_to_other_bridge", crm_call=request.call_id, ext=ext, line=request.line,
                     reason=verdict.why)  # fmt: skip
            return
        self.start(request, absent="" if verdict.has_device or not ext else f"extension {ext} is not on any PBX")

    def start(self, request: ClickToCall, *, absent: str = "") -> None:
        """Ring the employee, then the client; ``absent`` says why the employee cannot be rung (then Bitrix24's
        call is finished at once)."""
        dispatcher = self._dispatcher()
        plan = dispatcher.plan()
        ext = None if absent else self.directory.ext_for(request.user_id)
        key = f"c2c-{self._run}-{next(self._serial)}"
        started = _started(key, request, ext or "")
        with bind_call(key, key, request.line):
            self._place(dispatcher, plan, key, ext, started, request, absent)

    def _place(
        self,
        dispatcher: Dispatcher,
        plan: Plan,
        key: str,
        ext: str | None,
        started: ObservedStarted,
        request: ClickToCall,
        absent: str = "",
    ) -> None:
        problem = request.problem or self._undialable(request.phone)
        if problem:
            # Bitrix24 shows the employee a card "calling...": close it now, saying why, and dial nobody
            log.warning("clicktocall.undialable", reason=problem, crm_call=request.call_id, user_id=request.user_id)
            reason = f"b24-bridge: not dialled, {problem}"[:FAILED_REASON_LIMIT]
            dispatcher.start_observed(key, started)
            dispatcher.step_observed(key, ObservedEnded(dialstatus="INVALIDARGS", failed_reason=reason))
            return
        if not ext or not dispatcher.accepting:
            # Bitrix24 already shows the employee a card "calling...": finish its call so the card closes
            reason = "shutting down" if ext else absent or f"user {request.user_id} has no extension"
            log.warning("clicktocall.refused", reason=reason, crm_call=request.call_id)
            dispatcher.start_observed(key, started)
            said = f"b24-bridge: not dialled, {absent}"[:FAILED_REASON_LIMIT] if absent else ""
            dispatcher.step_observed(key, ObservedEnded(dialstatus="CHANUNAVAIL", failed_reason=said))
            return
        self.sessions[key] = _Session(key, request, ext)
        dispatcher.start_observed(key, started)
        log.info("clicktocall.started", call_id=key, ext=ext, crm_call=request.call_id, call_list=request.call_list_id)
        ring = EMPLOYEE_RINGS * plan.ring_seconds
        dispatcher.submit(key, RingAgent(leg=key, ext=ext, timeout=ring))

    def resume(self, key: str, row: CallRow, view: PbxView) -> str:
        """Carry on a click-to-call a dead process ran (a restart), from what the PBX still has of it
        (``bridge.recovery.clicktocall``): its legs stay up. Says what was found ('' when nothing can be carried
        on: recovery finishes it)."""
        dispatcher = self._dispatcher()
        request, left, early = request_of(row), remains(view, key), key in self._answered_early
        self._answered_early.discard(key)
        if request is None or (left.employee is None and not left.bridge):
            return ""
        # the directory may not know the employee yet (auto_map before its first refresh): their phone says it
        ext = self.directory.ext_for(request.user_id) or (
            EndpointTemplate(self.settings.asterisk.agent_endpoint).value_of_channel(left.employee.name)
            if left.employee is not None
            else None
        )
        if not ext:
            return ""
        s = self.sessions[key] = _Session(key, request, ext)
        client = f"{key}-client"
        legs = {key: left.employee_answered or bool(left.bridge)} if left.employee is not None else {}
        if left.client is not None:
            legs[client] = left.client_answered or bool(left.bridge)
        self.ari.take_over(key, legs, bridge=left.bridge, recording=f"{key}-talk" if left.bridge else "")
        dispatcher.restart.registered[key] = f"{key}.1"  # the dead process adopted Bitrix24's call already
        dispatcher.start_observed(key, _started(key, request, ext))
        if left.bridge:
            s.client_leg, s.answered, s.recording = client, True, f"{key}-talk"
            dispatcher.step_observed(key, ObservedAnswered(ext=ext), at=left.answered_at)
            if left.employee is not None and left.client is not None:
                return "click-to-call talking, resumed"
            # one of them hung up while no daemon ran: the other is alone in the bridge
            gone = client if left.employee is not None else key
            self._handle(s, PbxEvent(key, LegEnded(gone, LegOutcome.HANGUP)))
            return "click-to-call ended while the bridge was away"
        if early:  # the employee answered after the restart, before this: the client was never dialled
            self._handle(s, PbxEvent(key, LegAnswered(key)))
            return "click-to-call answered by the employee at the restart, dialling the client"
        if not left.employee_answered:
            return "click-to-call ringing the employee, resumed"
        s.client_leg = client
        if left.client is None:  # the client's phone stopped ringing while no daemon ran: never dialled twice
            self._handle(s, PbxEvent(key, LegEnded(client, LegOutcome.NO_ANSWER)))
            return "click-to-call ended while the bridge was away"
        if left.client_answered:  # picked up, but the dead process did not join them
            self._handle(s, PbxEvent(key, LegAnswered(client)))
            return "click-to-call joining the client, resumed"
        return "click-to-call ringing the client, resumed"

    def _undialable(self, phone: str) -> str:
        """Why ``phone`` cannot be dialled after the dial rules ('' when it can)."""
        try:
            self.settings.asterisk.dial_rules.dialled(phone)
        except BadPhoneNumber as exc:
            return str(exc)
        return ""

    async def call_back(self, request: CallbackRequest) -> None:
        """Dial the client; when they answer they enter the line's scheme as an inbound call (TYPE 4)."""
        dispatcher = self._dispatcher()
        line = request.line or next(iter(self.settings.plan.lines), "")
        if line not in self.settings.plan.lines:
            log.warning("callback.rejected", reason=f"line {line!r} is not configured")
            return
        if not dispatcher.accepting:
            log.warning("callback.rejected", reason="shutting down")
            return
        try:
            number = self.settings.asterisk.dial_rules.dialled(request.phone)
        except BadPhoneNumber as exc:
            log.warning("callback.rejected", reason=str(exc))
            return
        channel = f"{CALLBACK_PREFIX}{self._run}-{next(self._serial)}"
        dispatcher.expect_callback(channel, request.phone)
        endpoint = self.settings.asterisk.trunk_endpoint.format(number=number)
        ring = CLIENT_RINGS * dispatcher.plan().ring_seconds
        try:
            # the client's number rides in the arguments: a restarted daemon still knows whom it called back
            await self.ari.originate(endpoint, channel, ("inbound", line, "callback", request.phone), caller_id=line,
                                     timeout=ring)  # fmt: skip
        except Exception as exc:  # the PBX refused: nothing to mirror, say why
            dispatcher.forget_callback(channel)
            log.warning("callback.failed", phone=request.phone, error=str(exc))
            return
        log.info("callback.dialling", call_id=channel, line=line)
        # a client who never picks up never enters the app: forget the channel once it cannot ring any more
        asyncio.get_running_loop().call_later(max(ring, 1.0) + 2.0, dispatcher.forget_callback, channel)

    # -- PBX events of our sessions ---------------------------------------------------------------------

    def on_stasis(self, entered: StasisEntered) -> None:
        log.warning("pbx.unexpected_stasis", channel=entered.channel, args=list(entered.args))

    def owns_event(self, item: PbxEvent) -> bool:
        """Events of a click-to-call session are ours; everything else goes on to the dispatcher. An employee who
        answers a dead process's click-to-call before recovery hands it to :meth:`resume` is remembered for it."""
        session = self.sessions.get(item.call or "")
        if session is None:
            key = item.call or ""
            if key.startswith("c2c-") and item.event == LegAnswered(key) and len(self._answered_early) < EARLY_KEPT:
                self._answered_early.add(key)
            return False
        self._handle(session, item)
        return True

    def _handle(self, s: _Session, item: PbxEvent) -> None:
        dispatcher = self._dispatcher()
        event = item.event
        if isinstance(event, LegAnswered) and event.leg == s.key and not s.client_leg:
            s.client_leg = f"{s.key}-client"
            ring = CLIENT_RINGS * dispatcher.plan().ring_seconds
            # the number as the CRM holds it (reduced): the ARI commands apply the dial rules, once
            dispatcher.submit(s.key, RingNumber(leg=s.client_leg, number=s.request.phone, timeout=ring))
        elif isinstance(event, LegAnswered) and event.leg == s.client_leg and not s.answered:
            s.answered = True
            s.recording = f"{s.key}-talk"
            dispatcher.submit(s.key, ConnectLeg(s.client_leg))
            dispatcher.submit(s.key, StartRecording(s.recording))
            dispatcher.step_observed(s.key, ObservedAnswered(ext=s.ext))
        elif isinstance(event, LegEnded) and not s.ended:
            s.ended = True
            other = s.client_leg if event.leg == s.key else s.key
            if other:
                dispatcher.submit(s.key, CancelLeg(other))
            dispatcher.submit(s.key, HangupCaller())
            ended = self._ended(s, event)
            dispatcher.step_observed(s.key, ended)
            if not s.recording:
                self.sessions.pop(s.key, None)
        elif isinstance(event, RecordingReady) and event.name == s.recording:
            dispatcher.step_observed(s.key, ObservedRecording(event.name))
            self.sessions.pop(s.key, None)

    def _ended(self, s: _Session, event: LegEnded) -> ObservedEnded:
        recording = s.recording if s.answered else ""
        if s.answered:
            return ObservedEnded(dialstatus="ANSWER", cause=16, recording=recording)
        if event.leg == s.key and event.outcome is LegOutcome.HANGUP:
            return ObservedEnded(dialstatus="CANCEL")  # the employee put the phone down while the client rang
        # the employee's phone did not pick up (the client was never dialled), or the client's did not
        return ObservedEnded(dialstatus=DIALSTATUS.get(event.outcome, "NOANSWER"))

    def _dispatcher(self) -> Dispatcher:
        if self.dispatcher is None:
            raise RuntimeError("ClickToCallDesk.attach() was not called")
        return self.dispatcher


def _started(key: str, request: ClickToCall, ext: str) -> ObservedStarted:
    """The watched call's start: Bitrix24's CALL_ID adopted under our ``key``, for the employee who clicked."""
    return ObservedStarted(
        direction=Direction.OUTBOUND,
        number=request.phone,
        ext=ext,
        line=request.line,
        crm_key=key,
        adopt_call_id=request.call_id,
        user_id=request.user_id,
        linkedid=key,
    )
