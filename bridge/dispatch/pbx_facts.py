"""PBX facts that concern more than one call: an intercept code (which ringing call?) and a resync after a
reconnect (which calls ended while the link was away?)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from bridge.domain.commands import HangupCaller
from bridge.domain.events import CallerHungUp, Intercepted, LegEnded, LegOutcome, ObservedEnded
from bridge.domain.state import Call, State
from bridge.pbx.events import Resynced

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
    """After a reconnect: calls whose channels are gone ended while we were away."""
    live = {ch.id for ch in event.channels}
    linked = {ch.linkedid for ch in event.channels if ch.linkedid}
    for ext, availability in event.availability.items():
        d.availability.device[ext] = availability
    log.info("pbx.resynced", link=event.link, channels=len(live))
    if event.link in d.links_seen:
        d.metrics.reconnects.labels(link=event.link).inc()
    d.links_seen.add(event.link)
    if event.link == "ari":
        for call_id, call in list(d.calls.items()):
            for leg in call.ringing:
                if leg.id not in live:
                    log.info("call.reconciled", call_id=call_id, leg=leg.id, found="leg gone")
                    d.step_call(call_id, LegEnded(leg.id, LegOutcome.NO_ANSWER))
            call = d.calls.get(call_id, call)
            if call.talk is not None and call.talk.leg not in live and call_id in live:
                log.info("call.reconciled", call_id=call_id, leg=call.talk.leg, found="agent gone")
                d.step_call(call_id, LegEnded(call.talk.leg, LegOutcome.HANGUP))
            if call_id not in live and call_id in d.calls:
                log.info("call.reconciled", call_id=call_id, found="caller gone")
                d.step_call(call_id, CallerHungUp(16))
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
