"""PBX facts that concern more than one call: an intercept code (which ringing call?), a resync after a
reconnect (which calls ended while the link was away, and when?) and the calls a restart's recovery decides
about (``bridge/recovery.py``). Each says what to do; the dispatcher does it (this module does not know it).

A resync's ends carry the moment the link was lost (``PbxEvent.at``); :func:`happened_at` prefers the hang-up
AMI saw for that channel, so a conversation that ended during an ARI gap is not counted until the resync. A
leg the link never declared gone (its originate still queued in the call's executor) is not ended here: only
the link knows which legs the PBX could have known. Calls whose ``StasisStart`` was lost come from the link
as ordinary ``CallStarted`` events.

After a restart, recovery *claims* the callers the journal knows: their ``CallStarted`` (from the first
resync) is parked until recovery decides. Adopted (in a conversation) or finished: it is dropped. Re-routed:
:meth:`RestartClaims.resume` puts it back on the queue and the call starts afresh, continuing the journal's CRM
leg (its ``register`` is not sent again) and numbering its PBX legs after the dead process's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

import structlog

from bridge.domain.commands import CrmAdopt, CrmCommand, CrmRegister
from bridge.domain.events import CallerHungUp, CallStarted, Event, Intercepted, LegEnded, LegOutcome
from bridge.domain.state import Call, State
from bridge.pbx.events import PbxEvent, Resynced

log = structlog.get_logger(__name__)

HungUpAt = Callable[[str], datetime | None]
"""When the PBX's other link (AMI) saw a channel hang up, if it did."""


def intercept_target(calls: Iterable[Call], event: Intercepted) -> str | None:
    """A member dialled an intercept code: the oldest call ringing in a group they belong to (None: none is)."""
    candidates = [
        c for c in calls if c.state is State.RINGING and c.walk is not None and group_has(c, event.ext, event.code)
    ]
    return min(candidates, key=lambda c: c.started_at).call_id if candidates else None


@dataclass(frozen=True)
class Reconciled:
    """An end a resync found: step ``call`` with ``event`` as of ``at``; ``found`` says what for the log."""

    call: str
    event: Event
    at: datetime | None
    found: str


def resync_ends(calls: Mapping[str, Call], event: Resynced, hung_up_at: HungUpAt) -> list[Reconciled]:
    """After an ARI reconnect: calls whose talking agent or caller is gone ended while we were away (the link has
    already reported what it followed; this catches the rest). Ringing legs are left to the link."""
    live = {ch.id for ch in event.channels}
    ends: list[Reconciled] = []
    for call_id, call in calls.items():
        if call.talk is not None and call.talk.leg not in live and call_id in live:
            at = _ended_at(hung_up_at, call.talk.leg, event.lost_at)
            ends.append(Reconciled(call_id, LegEnded(call.talk.leg, LegOutcome.HANGUP), at, "agent gone"))
        if call_id not in live:
            ends.append(
                Reconciled(call_id, CallerHungUp(16), _ended_at(hung_up_at, call_id, event.lost_at), "caller gone")
            )
    return ends


def observed_gone(observed: Iterable[str], event: Resynced) -> list[str]:
    """After an AMI reconnect: the watched calls none of whose channels exists any more."""
    live = {ch.id for ch in event.channels}
    linked = {ch.linkedid for ch in event.channels if ch.linkedid}
    return [key for key in observed if key not in linked and key not in live]


def group_has(call: Call, ext: str, code: str) -> bool:
    walk = call.walk
    if walk is None or not walk.queue:
        return False
    queue = call.plan.queues.get(walk.queue)
    return queue is not None and call.plan.intercepts(queue, ext, code)


def happened_at(hung_up_at: HungUpAt, item: PbxEvent) -> datetime | None:
    """When an end a resync found really happened: AMI's hang-up of that channel, else when the link was lost."""
    if item.at is None:
        return None
    event = item.event
    channel = event.leg if isinstance(event, LegEnded) else item.call or ""
    return _ended_at(hung_up_at, channel, item.at)


def _ended_at(hung_up_at: HungUpAt, channel: str, lost_at: datetime | None) -> datetime | None:
    if lost_at is None:
        return None
    seen = hung_up_at(channel)
    return seen if seen is not None else lost_at


@dataclass(frozen=True)
class Resume:
    """How a call recovery re-routes starts again."""

    crm_key: str
    """Prefix of its CRM legs: the journal's, so that its first leg is the one already registered."""
    registered: str
    """That leg (its ``register`` is not sent again); empty when the call registers a new one."""
    serial: int
    """Its PBX legs are numbered after this (the dead process's may still be hanging up)."""


@dataclass
class RestartClaims:
    """Callers a restart's recovery decides about; see the module's docstring."""

    claimed: Callable[[str], bool] = lambda _call: False
    parked: dict[str, CallStarted] = field(default_factory=dict)
    resumes: dict[str, Resume] = field(default_factory=dict)
    registered: dict[str, str] = field(default_factory=dict)
    """Call -> its CRM leg registered (or adopted) by the dead process (the one ``register`` to leave out)."""
    put: Callable[[PbxEvent], None] | None = None

    def resume(self, call: str, how: Resume) -> None:
        """Recovery re-routes ``call``: start it (now, or when its ``CallStarted`` arrives)."""
        self.resumes[call] = how
        started = self.parked.pop(call, None)
        if started is not None and self.put is not None:
            self.put(PbxEvent(call, started, started.linkedid))

    def release(self, call: str) -> None:
        """Recovery adopted or finished ``call``: it is not started."""
        self.parked.pop(call, None)

    def registered_already(self, call: str, cmd: CrmCommand) -> bool:
        """``cmd`` registers (or adopts) the CRM leg the dead process registered: leave it out (once)."""
        if not isinstance(cmd, CrmRegister | CrmAdopt) or self.registered.get(call) != cmd.crm_leg:
            return False
        del self.registered[call]
        log.info("crm.continued", call_id=call, crm_leg=cmd.crm_leg)
        return True


def start_or_park(claims: RestartClaims, call: str, event: CallStarted) -> tuple[CallStarted, int] | None:
    """The start of ``call`` as it goes ahead (with its leg numbering), or None while recovery decides about it."""
    how = claims.resumes.pop(call, None)
    if how is not None:
        if how.registered:
            claims.registered[call] = how.registered
        return replace(event, crm_key=how.crm_key), how.serial
    if claims.claimed(call):
        claims.parked[call] = event
        log.info("call.parked", call_id=call, note="found at a (re)start: recovery decides first")
        return None
    return event, 0
