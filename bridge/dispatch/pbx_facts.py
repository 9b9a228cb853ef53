"""PBX facts that concern more than one call: an intercept code (which ringing call?), a resync after a
reconnect (which calls ended while the link was away, and when?) and the calls a restart's recovery decides
about (``bridge/recovery.py``).

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

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from bridge.domain.commands import CrmAdopt, CrmCommand, CrmRegister, HangupCaller
from bridge.domain.events import CallerHungUp, CallStarted, Intercepted, LegEnded, LegOutcome, ObservedEnded
from bridge.domain.state import Call, State
from bridge.pbx.events import PbxEvent, Resynced

if TYPE_CHECKING:
    from bridge.dispatch.dispatcher import Dispatcher

log = structlog.get_logger(__name__)


def intercept(d: Dispatcher, event: Intercepted) -> None:
    """A member dialled an intercept code: give them the oldest call ringing in a group they belong to."""
    candidates = [
        c
        for c in d.calls.values()
        if c.state is State.RINGING and c.walk is not None and group_has(c, event.ext, event.code)
    ]
    if not candidates:
        log.info("call.intercept_refused", ext=event.ext, reason="no call is ringing for this member")
        d.spawn(d.pbx.execute(event.leg, HangupCaller("normal")))
        return
    target = min(candidates, key=lambda c: c.started_at)
    d.step_call(target.call_id, event)


def resynced(d: Dispatcher, event: Resynced) -> None:
    """After a reconnect: calls whose caller or talking agent is gone ended while we were away (the link has
    already reported what it followed; this catches the rest). Ringing legs are left to the link."""
    live = {ch.id for ch in event.channels}
    linked = {ch.linkedid for ch in event.channels if ch.linkedid}
    d.devices.listed(event.devices)
    log.info("pbx.resynced", link=event.link, channels=len(live))
    if event.link in d.links_seen:
        d.metrics.reconnects.labels(link=event.link).inc()
    d.links_seen.add(event.link)
    if event.link == "ari":
        for call_id, call in list(d.calls.items()):
            if call.talk is not None and call.talk.leg not in live and call_id in live:
                log.info("call.reconciled", call_id=call_id, leg=call.talk.leg, found="agent gone")
                at = _ended_at(d, call.talk.leg, event.lost_at)
                d.step_call(call_id, LegEnded(call.talk.leg, LegOutcome.HANGUP), at)
            if call_id not in live and call_id in d.calls:
                log.info("call.reconciled", call_id=call_id, found="caller gone")
                d.step_call(call_id, CallerHungUp(16), _ended_at(d, call_id, event.lost_at))
    else:
        for key in list(d.observed):
            if key not in linked and key not in live:
                log.info("call.reconciled", call_id=key, found="observed call gone")
                d.step_observed(key, ObservedEnded(cause=16))


def group_has(call: Call, ext: str, code: str) -> bool:
    walk = call.walk
    if walk is None or not walk.queue:
        return False
    queue = call.plan.queues.get(walk.queue)
    return queue is not None and ext in queue.members and (not code or queue.intercept_code in ("", code))


def happened_at(d: Dispatcher, item: PbxEvent) -> datetime | None:
    """When an end a resync found really happened: AMI's hang-up of that channel, else when the link was lost."""
    if item.at is None:
        return None
    event = item.event
    channel = event.leg if isinstance(event, LegEnded) else item.call or ""
    return _ended_at(d, channel, item.at)


def _ended_at(d: Dispatcher, channel: str, lost_at: datetime | None) -> datetime | None:
    if lost_at is None:
        return None
    seen = d.hung_up_at(channel)
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


def start_or_park(d: Dispatcher, call: str, event: CallStarted) -> tuple[CallStarted, int] | None:
    """The start of ``call`` as it goes ahead (with its leg numbering), or None while recovery decides about it."""
    claims = d.restart
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
