"""Calls the fallback dialplan handled while the bridge was away, mirrored to Bitrix24 once it is back.

At every AMI (re)connect, and every ``poll`` seconds (a fallback call still in progress, calls while only ARI was
lost), the AstDB tree ``/b24fallback`` is read with ``DBGetTree`` (the ``reporting`` class the bridge's AMI user
has). Each complete trace becomes an offline leg in the journal: ``register`` SHOW=0 with the real start, ``finish``
for the employee who answered with the talk time (304 for the line's owner, or the voicemail's, when nobody did,
with the line's missed-call task and notification), the recording attached. Only once that is committed is the
trace deleted, by an Originate of ``Local/<UNIQUEID>@b24-fallback-forget`` (``originate`` class; deleting AstDB
keys over AMI would need ``system``). Exactly once: the leg is named after the call's Uniqueid, so a trace found
again (a restart between journaling and deleting, a failed delete) is only deleted, not journaled twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from bridge.dialplan.trace import FAMILY, FORGET_CONTEXT, FallbackTrace, parse_tree
from bridge.domain.cards import line_notices
from bridge.domain.commands import (
    CallType,
    CrmAttachRecord,
    CrmCommand,
    CrmFinish,
    CrmMissedTask,
    CrmNotify,
    CrmRegister,
)
from bridge.domain.scheme import Plan
from bridge.domain.status import ANSWERED, MISSED
from bridge.pbx.events import PbxError
from bridge.pbx.outcomes import EndpointTemplate

log = structlog.get_logger(__name__)

LEG_PREFIX = "fallback-"
FORGET_TIMEOUT = 10.0


class TraceJournal(Protocol):
    async def calls(self, status: str | None = None, since: Any = None, crm_leg: str | None = None) -> list[Any]: ...

    async def append(self, cmd: Any, *, linkedid: str = "", pbx_call: str = "") -> int: ...

    async def go_offline(self, crm_leg: str) -> None: ...

    def transaction(self) -> Any: ...


class TraceSource(Protocol):
    connected: bool

    async def db_tree(self, family: str) -> list[tuple[str, str]]: ...

    async def forget_trace(self, uniqueid: str, context: str, timeout: float) -> bool: ...

    async def core_show_channels(self) -> list[dict[str, str]]: ...


def mirror_commands(trace: FallbackTrace, plan: Plan, agents: EndpointTemplate) -> list[CrmCommand] | str:
    """The operations that mirror ``trace`` as Bitrix24 would have seen the call, or why it cannot be."""
    line = plan.lines.get(trace.line)
    if line is None:
        return f"line {trace.line!r} is not configured"

    def user(ext: str) -> int:
        employee = plan.employees.get(ext)
        return employee.user_id if employee is not None and not employee.dismissed else 0

    owner = user(line.default_ext)
    leg = LEG_PREFIX + trace.uniqueid
    answered = trace.talk > 0 and bool(trace.peer)
    talker = user(agents.value_of_channel(trace.peer) or "") if answered else 0
    if answered:
        finisher, status, duration = talker or owner, ANSWERED, trace.talk
    else:
        finisher, status, duration = (user(trace.voicemail) if trace.message else 0) or owner, MISSED, 0
    if not finisher:
        return f"nobody owns line {trace.line} in Bitrix24 (set its default_ext)"
    commands: list[CrmCommand] = [
        CrmRegister(
            crm_leg=leg,
            user_id=owner or finisher,
            phone=trace.caller,
            call_type=CallType.INCOMING,
            line=line.number,
            started_at=datetime.fromtimestamp(trace.start, UTC),
            show=False,
            crm_create=line.crm_create,
            crm_source=line.crm_source,
        ),
        CrmFinish(leg, finisher, duration, status, add_to_chat=line.add_to_chat),
    ]
    recording = trace.recording if answered else trace.message
    if recording:
        commands.append(CrmAttachRecord(leg, recording))
    if not answered:  # the missed-call task and notification the line asks for, as the bridge sends them itself
        started = datetime.fromtimestamp(trace.start, UTC)
        notices = line_notices(line, trace.caller, started, finisher, voicemail=bool(trace.message), leg=leg)
        commands += [c for c in notices if isinstance(c, CrmMissedTask | CrmNotify)]
    return commands


class FallbackMirror:
    """Reads the traces at each (re)connect of the AMI link, journals them, then deletes them."""

    def __init__(
        self,
        journal: TraceJournal,
        source: TraceSource,
        plan: Callable[[], Plan],
        agents: EndpointTemplate,
        notify: Callable[[], None],
        *,
        poll: float = 30.0,
    ) -> None:
        self.journal, self.source, self.plan, self.agents = journal, source, plan, agents
        self.notify = notify
        self.poll = poll
        self._wake = asyncio.Event()

    def connected(self) -> None:
        """The AMI link is (back) up: look at once."""
        self._wake.set()

    async def run(self) -> None:
        """Look at each connect, and every ``poll`` seconds (calls still in progress; the ARI link alone lost)."""
        while True:
            try:
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if not self.source.connected:
                continue
            try:
                await self.collect()
            except PbxError as exc:
                log.warning("fallback.unreadable", error=str(exc))

    async def collect(self) -> bool:
        """Mirror and delete every complete trace; True when a fallback call is still in progress."""
        complete, open_, bad = parse_tree(await self.source.db_tree(FAMILY))
        for uid in bad:
            log.error("fallback.bad_trace", uniqueid=uid, note="left in AstDB; delete it by hand if it is not a call")
        if open_:
            complete += await self._cut_short(open_)
        for trace in complete:
            if not await self.journal.calls(crm_leg=LEG_PREFIX + trace.uniqueid):
                await self._journal(trace)
        for trace in complete:  # journaled first, all of them: a slow delete holds up no mirroring
            if not await self.journal.calls(crm_leg=LEG_PREFIX + trace.uniqueid):
                continue  # not mirrored (reported above): its trace stays
            if not await self.source.forget_trace(trace.uniqueid, FORGET_CONTEXT, FORGET_TIMEOUT):
                log.warning("fallback.forget_failed", uniqueid=trace.uniqueid, note="deleted at the next look")
        return bool(open_)

    async def _cut_short(self, open_: list[FallbackTrace]) -> list[FallbackTrace]:
        """Open traces whose channel is gone (Asterisk stopped mid-call, so ``h`` never ran): what is known of
        them, as missed calls. Read again after the channel list, so a call that ended meanwhile is not one."""
        live = {c.get("Uniqueid", "") for c in await self.source.core_show_channels()}
        gone = {t.uniqueid for t in open_ if t.uniqueid not in live}
        if not gone:
            return []
        _, still_open, _ = parse_tree(await self.source.db_tree(FAMILY))
        cut = [t for t in still_open if t.uniqueid in gone]
        for trace in cut:
            note = "its channel is gone without an end (Asterisk restarted?): mirrored as missed"
            log.warning("fallback.incomplete", uniqueid=trace.uniqueid, line=trace.line, note=note)
        return [replace(t, end=t.start, peer="", talk=0) for t in cut]

    async def _journal(self, trace: FallbackTrace) -> None:
        leg = LEG_PREFIX + trace.uniqueid
        commands = mirror_commands(trace, self.plan(), self.agents)
        if isinstance(commands, str):
            log.error("fallback.not_mirrored", uniqueid=trace.uniqueid, line=trace.line, reason=commands)
            return
        async with self.journal.transaction():
            for cmd in commands:
                await self.journal.append(cmd, pbx_call=trace.uniqueid)
            await self.journal.go_offline(leg)
        status = next(c.status_code for c in commands if isinstance(c, CrmFinish))
        log.info("fallback.mirrored", crm_leg=leg, line=trace.line, status=status, duration=trace.talk)
        self.notify()
