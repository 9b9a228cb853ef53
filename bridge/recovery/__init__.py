"""After a (re)start: the calls the PBX still has or the journal still holds open, reconciled.

Until its first look at the PBX (``GET /channels``, ``GET /bridges``, AMI ``CoreShowChannels``) recovery holds
back every inbound caller the daemon finds in its Stasis application (``pbx_facts.RestartClaims``); then:

* **A journaled call whose caller is gone** ended while the daemon was down: it is finished with what the
  journal knows, missed (304, 0 s) for the user it was registered for.
* **A journaled call in a conversation** (its caller in a bridge with at least one real channel; a music on
  hold Announcer, a recorder or a snoop is not one, ``view.py``) is *adopted*: watched until the conversation
  ends, then finished as answered for the talker (the agent in the bridge, by its channel's extension; else the
  one employee whose card was still open; else the registered user) with the talk since the answer: from the
  moment the agent's leg joined, as the PBX keeps it (``B24_ANSWERED`` on that channel, see ``ari_commands``;
  where it is missing, from the restart), counted while two real channels remain (up to one poll is lost at the
  end). When the
  agent leaves, the caller, who has nobody left, is hung up; when the caller leaves, the agent channels left in
  the bridge are hung up.
* **A journaled call whose caller waits in Stasis but is not in a conversation** (ringing agents, on hold, in
  an IVR, leaving a voicemail) is *re-routed* rather than left in silence: the dead process's agent legs and
  bridge are removed and the call starts afresh, as a new ``StasisStart`` would, continuing the same CRM leg
  (no second ``register``; cards the journal last showed are hidden first). A call whose open CRM leg is not its
  first (after a transfer) has that leg finished as missed and starts with a new one.
* **A journaled click-to-call** (its CALL_ID adopted from Bitrix24) is carried on by the desk
  (``ClickToCallDesk.resume``, ``clicktocall.py``): ringing, talking or half hung up, its legs stay ours; one with
  nothing left on the PBX is finished as missed for the employee who clicked.
* **An inbound caller the journal does not know** (``kill -9`` before the call's first journal write; a
  ``StasisStart`` lost with the connection) is started as a new call.
* **Agent legs nobody adopted** (the dead process's originates: ``agent,<call>,<leg>`` channels of a call the
  new process does not run) and other non-inbound channels of our application created before this start are
  hung up, so nobody is left ringing or talking to no one.

A journaled call that only AMI watched (dialplan calls) is adopted while it lives. A finish is never sent without
a user: where the journal names nobody, the line's owner (``Plan.line_owner``) finishes it, with a
``call.warning``. Each decision is logged as ``call.reconciled`` (``found`` says which). PBX leg ids of a
restarted call are numbered from the next hundred above the dead process's, so none is reused while the old one
may still be hanging up (nor a bridge recording's name). A re-routed call that reaches voicemail again records
under its CRM leg's name, which the dead process may have used already (ARI then refuses the recording with 409).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from bridge.dispatch.pbx_facts import RestartClaims, Resume
from bridge.domain.commands import CrmFinish, CrmHide, CrmShow
from bridge.domain.status import ANSWERED, MISSED
from bridge.journal.rows import CARD_KINDS, CallRow, OpRow
from bridge.logs import call_keys
from bridge.pbx.ari_commands import ANSWERED_VAR
from bridge.pbx.events import LiveChannel, PbxError
from bridge.pbx.outcomes import EndpointTemplate
from bridge.recovery.view import PbxView, ari_time, pbx_view

__all__ = ["Recovery", "cards_left_open", "pbx_view"]

log = structlog.get_logger(__name__)

LEG_NUMBER = re.compile(r"-[a-z]+(\d+)$")
KNOWN_FOR = 86_400.0
"""Seconds back that :meth:`Recovery.load` reads the journal's legs (a call still up after a restart is younger)."""


class Journalish(Protocol):
    async def calls(
        self, status: str | None = None, since: Any = None, crm_leg: str | None = None
    ) -> list[CallRow]: ...

    async def operations(self, crm_leg: str | None) -> list[OpRow]: ...

    async def append(self, cmd: Any, *, linkedid: str = "", pbx_call: str = "", line: str = "") -> int: ...

    async def legs_since(self, created: float) -> set[str]: ...


class Pbx(Protocol):
    async def request(self, resource: str, operation: str, **params: object) -> Any: ...


@dataclass
class _Adopted:
    rows: list[CallRow]
    stasis: bool
    talked: float = 0.0
    seen_talking: float | None = None
    """When the last look saw it in a conversation (None: it was not)."""
    ever: bool = False
    talker: int = 0
    bridge: str = ""
    partners: tuple[str, ...] = field(default_factory=tuple)
    before: float = 0.0
    """Seconds it had talked when this process first looked (from the PBX's ``B24_ANSWERED``; 0 unknown)."""


class Recovery:
    """Reconciles one start: build it and :meth:`load` the journal before the PBX links run, then :meth:`run` it."""

    def __init__(
        self,
        journal: Journalish,
        claims: RestartClaims,
        *,
        app: str,
        agents: EndpointTemplate,
        device: EndpointTemplate,
        user_of: Callable[[str], int],
        notify: Callable[[], None],
        owner_of: Callable[[str], int] = lambda _line: 0,
        chat_of: Callable[[str], bool] = lambda _line: True,
        resume: Callable[[str, CallRow, PbxView], str] = lambda _call, _row, _view: "",
        poll: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        written: Callable[[str], bool] = lambda _leg: False,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.journal = journal
        self.written = written
        """Whether this process has journaled a leg since the start (read without waiting: see :meth:`holds`)."""
        self.claims = claims
        self.app = app
        self.templates = (agents, device)
        self.user_of = user_of
        self.notify = notify
        self.owner_of = owner_of
        """The user who owns a line's calls (for a finish nobody else is known for)."""
        self.chat_of = chat_of
        """Whether a line's finishes post the call to the employee's chat (``add_to_chat``)."""
        self.resume = resume
        """Carries on a click-to-call (the desk): what it found, or '' when nothing of it can go on."""
        self.poll = poll
        self.clock = clock
        self.wall = wall
        """Unix seconds now (to read ``B24_ANSWERED`` against)."""
        self.started = datetime.now(UTC)
        self.open: dict[str, list[CallRow]] = {}
        self.journaled: set[str] = set()
        """Legs the journal held at the start (recent ones: a call does not last a day)."""
        self.looked = False
        self.decided: set[str] = set()
        claims.claimed = self.holds

    async def load(self) -> None:
        """Read what the journal knows of the calls before this start: the bridge's start, or the moment a standby
        took the PBX over (what the bridge that held it journaled until then)."""
        self.started = datetime.now(UTC)
        found: dict[str, list[CallRow]] = {}
        for row in await self.journal.calls(status="open"):
            if row.pbx_call:
                found.setdefault(row.pbx_call, []).append(row)
        self.open = found
        self.journaled = await self.journal.legs_since(time.time() - KNOWN_FOR)

    def holds(self, call: str) -> bool:
        """The start of ``call`` waits for recovery: everything until its first look; then the calls of the
        journal (whatever the link reports about them later, recovery has decided: they never start afresh)."""
        if not self.looked or call in self.open or call in self.decided:
            return True
        return f"{call}.1" in self.journaled or self.written(f"{call}.1")

    async def run(
        self,
        ready: Callable[[], bool],
        look: Callable[[], Awaitable[PbxView]],
        pbx: Pbx,
        known: Callable[[str], bool],
    ) -> None:
        while not ready():  # noqa: ASYNC110 - the PBX links expose a flag, not an event
            await asyncio.sleep(self.poll / 4)
        view = await self._look(look)
        adopted: dict[str, _Adopted] = {}
        finished: list[str] = []
        try:
            adopted = await self._first_look(view, pbx, known)
        finally:
            self.looked = True
            for call in list(self.claims.parked):
                if call in self.open:
                    continue
                if await self.journal.calls(crm_leg=f"{call}.1"):  # the dead process finished it: the caller is leaving
                    self.claims.release(call)
                    finished.append(call)
                else:
                    self.claims.resume(call, Resume("", "", _serial(view, call)))
        for call in finished:
            log.info("call.reconciled", call_id=call, found="finished before the restart, hung up")
            await _tolerate(pbx.request("channels", "hangup", channelId=call, reason="normal"))
        await self._watch(adopted, look, pbx)

    async def _look(self, look: Callable[[], Awaitable[PbxView]]) -> PbxView:
        while True:
            try:
                return await look()
            except (PbxError, OSError, TimeoutError) as exc:
                log.info("recovery.look_failed", error=str(exc))
            await asyncio.sleep(self.poll)

    async def _first_look(self, view: PbxView, pbx: Pbx, known: Callable[[str], bool]) -> dict[str, _Adopted]:
        adopted: dict[str, _Adopted] = {}
        for call, rows in list(self.open.items()):
            if known(call):
                del self.open[call]
                continue
            caller = view.channels.get(call)
            resumed = self.resume(call, rows[0], view) if await self._clicked(rows) else ""
            if resumed:
                log.info("call.reconciled", call_id=call, crm_legs=[r.crm_leg for r in rows], found=resumed)
            elif not view.live(call) and call not in self.claims.parked:  # parked: the link has just listed it
                await self._finish(call, rows, MISSED, 0, 0, "ended")
            elif view.conversation(call) is not None or not self._waiting_caller(caller):
                log.info("call.reconciled", **_named(call, rows), crm_legs=[r.crm_leg for r in rows],
                         found="still up, adopted")  # fmt: skip
                adopted[call] = _Adopted(rows, stasis=caller is not None, before=await self._talked(view, call, pbx))
                self.claims.release(call)
            else:
                await self._reroute(call, rows, view, pbx)
            self.open.pop(call, None)
            self.decided.add(call)
        partners = {p for a in adopted.values() for p in self._partners(view, a)}
        for channel in view.channels.values():
            if channel.id not in partners and channel.id not in adopted and self._orphan(channel, known):
                log.info("call.reconciled", call_id=channel.id, name=channel.name, found="orphan leg, hung up")
                await _tolerate(pbx.request("channels", "hangup", channelId=channel.id, reason="normal"))
        self._observe(adopted, view, self.clock())
        return adopted

    async def _talked(self, view: PbxView, call: str, pbx: Pbx) -> float:
        """How long ``call``'s conversation has lasted, from when its agent's leg joined (``B24_ANSWERED``, which
        the process that joined it left on the channel); 0 when no partner carries it (a dialplan call)."""
        conversation = view.conversation(call)
        for partner in conversation.partners if conversation is not None else ():
            try:
                found = await pbx.request("channels", "getChannelVar", channelId=partner.id, variable=ANSWERED_VAR)
                answered = float(found["value"])
            except (PbxError, TypeError, KeyError, ValueError):
                continue  # not ours, gone, or not a number: the next partner, or the restart's moment
            return max(0.0, self.wall() - answered)
        return 0.0

    async def _clicked(self, rows: list[CallRow]) -> bool:
        """A click-to-call: Bitrix24 registered it, the dead process adopted its CALL_ID."""
        return len(rows) == 1 and any(op.kind == "adopt" for op in await self.journal.operations(rows[0].crm_leg))

    def _args(self, channel: LiveChannel | None) -> list[str]:
        if channel is None or channel.app != "Stasis":
            return []
        args = channel.app_data.split(",")
        return args[1:] if args[0] == self.app else []

    def _waiting_caller(self, channel: LiveChannel | None) -> bool:
        args = self._args(channel)
        return len(args) >= 2 and args[0] == "inbound"

    def _orphan(self, channel: LiveChannel, known: Callable[[str], bool]) -> bool:
        args = self._args(channel)
        if not args or args[0] == "inbound":
            return False
        if args[0] == "agent":
            return len(args) < 2 or not known(args[1])
        return _created(channel) < self.started

    def _partners(self, view: PbxView, item: _Adopted) -> list[str]:
        conversation = view.conversation(item.rows[0].pbx_call)
        return [c.id for c in conversation.partners] if conversation else []

    async def _reroute(self, call: str, rows: list[CallRow], view: PbxView, pbx: Pbx) -> None:
        for channel in view.channels.values():
            args = self._args(channel)
            if len(args) >= 2 and args[0] == "agent" and args[1] == call:
                await _tolerate(pbx.request("channels", "hangup", channelId=channel.id, reason="normal"))
        for bridge in view.bridges_of(call):
            await _tolerate(pbx.request("bridges", "destroy", bridgeId=bridge))
        first = rows[0].crm_leg if len(rows) == 1 and rows[0].crm_leg.endswith(".1") else ""
        for row in rows:
            if row.crm_leg != first:
                await self._finish(call, [row], MISSED, 0, 0, "re-routed, its transferred leg ended")
            else:
                await self._hide_open(row, keep=0)
        key = first[: -len(".1")] if first else f"{call}.r{int(time.time())}"
        log.info(
            "call.reconciled", **_named(call, rows), crm_legs=[r.crm_leg for r in rows], found="waiting, re-routed"
        )
        self.claims.resume(call, Resume(key, first, _serial(view, call, known_before=True)))
        self.notify()

    async def _watch(self, adopted: dict[str, _Adopted], look: Callable[[], Awaitable[PbxView]], pbx: Pbx) -> None:
        while adopted:
            await asyncio.sleep(self.poll)
            view = await self._look(look)
            self._observe(adopted, view, self.clock())
            for call, item in list(adopted.items()):
                live = view.live(call)
                if live and (item.seen_talking is not None or not item.ever):
                    continue
                if item.stasis:  # the caller is an ARI channel (``live`` also holds while an agent bears its linkedid)
                    await self._clear(call, item, view, pbx, caller_left=call in view.channels)
                seconds = max(1, int(item.talked + 0.5)) if item.ever else 0
                await self._finish(call, item.rows, ANSWERED if item.ever else MISSED, seconds, item.talker, "ended")
                del adopted[call]

    def _observe(self, adopted: dict[str, _Adopted], view: PbxView, now: float) -> None:
        for call, item in adopted.items():
            conversation = view.conversation(call)
            if conversation is None:
                item.seen_talking = None
                continue
            if item.seen_talking is not None:
                item.talked += now - item.seen_talking
            elif not item.ever:  # the talk before this process looked: counted once
                item.talked += item.before
            item.seen_talking, item.ever = now, True
            item.bridge, item.partners = conversation.bridge, tuple(c.id for c in conversation.partners)
            item.talker = item.talker or next(filter(None, (self._user(c.name) for c in conversation.partners)), 0)

    async def _clear(self, call: str, item: _Adopted, view: PbxView, pbx: Pbx, *, caller_left: bool) -> None:
        """The adopted conversation is over: hang up whoever is left on the line, remove its bridge."""
        left = [call] if caller_left else [p for p in item.partners if p in view.channels]
        for channel in left:
            await _tolerate(pbx.request("channels", "hangup", channelId=channel, reason="normal"))
        if item.bridge in view.bridges:
            await _tolerate(pbx.request("bridges", "destroy", bridgeId=item.bridge))

    def _user(self, channel_name: str) -> int:
        for template in self.templates:
            ext = template.value_of_channel(channel_name)
            if ext is not None and self.user_of(ext):
                return self.user_of(ext)
        return 0

    async def _finish(
        self, call: str, rows: list[CallRow], status: str, duration: int, talker: int, found: str
    ) -> None:
        for row in rows:
            open_cards = cards_left_open(await self.journal.operations(row.crm_leg))
            user = row.user_id or 0
            if status == ANSWERED:
                user = talker or (open_cards[0] if len(open_cards) == 1 else user)
            if not user:  # Bitrix24 refuses a finish without USER_ID for good
                user = self.owner_of(row.line or "")
                problem = "the journal names nobody for this call (written before it kept the user)"
                if not user:
                    log.warning("call.warning", call_id=call, crm_leg=row.crm_leg,
                                problem=f"{problem} and no line has a default_ext: not finished")  # fmt: skip
                    continue
                log.warning("call.warning", call_id=call, crm_leg=row.crm_leg,
                            problem=f"{problem}: finished for the line's owner, user {user}")  # fmt: skip
            await self._hide_open(row, keep=user)
            keys = {"linkedid": row.linkedid, "pbx_call": call}
            finish = CrmFinish(row.crm_leg, user, duration, status, add_to_chat=self.chat_of(row.line or ""))
            await self.journal.append(finish, **keys)
            log.info("call.reconciled", **_named(call, [row]), crm_leg=row.crm_leg, found=found, status=status,
                     duration=duration, user=user)  # fmt: skip
        self.notify()

    async def _hide_open(self, row: CallRow, keep: int) -> None:
        """Hide the cards the journal last showed for ``row`` (but ``keep``'s: its finish hides that one)."""
        shown = tuple(u for u in cards_left_open(await self.journal.operations(row.crm_leg)) if u != keep)
        if shown:
            await self.journal.append(CrmHide(row.crm_leg, shown), linkedid=row.linkedid, pbx_call=row.pbx_call)


def _serial(view: PbxView, call: str, *, known_before: bool = False) -> int:
    """Where a restarted call's leg numbers start: the next hundred above the legs of it the PBX still has (at
    least 100 for a call the dead process ran, whose recordings are stored under the low numbers)."""
    numbers = [1 if known_before else 0]
    for channel in view.channels.values():
        found = LEG_NUMBER.search(channel.id) if channel.id.startswith(f"{call}-") else None
        numbers += [int(found.group(1))] if found else []
    top = max(numbers)
    return 0 if not top else (top // 100 + 1) * 100


def _created(channel: LiveChannel) -> datetime:
    created = ari_time(channel.created)  # unknown: never taken for the dead process's
    return created if created is not None else datetime.max.replace(tzinfo=UTC)


async def _tolerate(pending: Awaitable[Any]) -> None:
    """A clean-up request: gone already (404) or refused is logged, never raised."""
    try:
        await pending
    except PbxError as exc:
        if exc.status != 404:
            log.warning("pbx.cleanup_failed", link="ari", error=str(exc))


def cards_left_open(operations: list[OpRow]) -> list[int]:
    """Users whose card for this leg the journal last showed (sent or not), in the order they were shown."""
    shown: dict[int, None] = {}
    for op in operations:
        if op.kind not in CARD_KINDS or not op.readable:
            continue
        command = op.command
        if isinstance(command, CrmShow):
            shown.update(dict.fromkeys(command.user_ids))
        elif isinstance(command, CrmHide):
            for user in command.user_ids:
                shown.pop(user, None)
    return list(shown)


def _named(call: str, rows: list[CallRow]) -> dict[str, str]:
    """The keys naming a journaled call on a log line (its line and linkedid from the journal)."""
    return call_keys(call, rows[0].linkedid if rows else "", rows[0].line if rows else "")
