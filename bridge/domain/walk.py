"""Ring walks: who rings next, for how long, and what happens when a leg stops ringing.

* QUEUE (``in_order``; ``evenly`` = members sorted by calls answered today, ``workload`` by open leads or deals,
  ties in list order): one member at a time, ``rings_per_member`` rings each, ``passes`` times over the list,
  skipping unavailable members; then the queue's final action.
* EVERYBODY: every available member at once (at most ``MAX_EVERYBODY_DEVICES``) for ``rings_per_member`` rings,
  or endlessly when 0 (a leg that times out rings again; a member who becomes free joins); then the final action.
* TARGETS (an employee, the responsible manager, their supervisor): each in turn with the employee's own rules:
  busy -> ``on_busy`` (voicemail or a number); not registered -> mobile (``unavailable_to_mobile``); no answer
  -> mobile (``no_answer_to_mobile``; the desk phone rings the employee's ``no_answer_rings`` first, if set);
  absent / not clocked in / offline -> next. Each rings the rule's ``rings``. When nobody is left: the next rule.
* NUMBER: one external number; no answer -> the next rule.
* HOLD: music until a member is free; offer the call to each free member once, again after they become
  available again; ``max_wait`` -> hang up.
* TRANSFER: a blind transfer's leg; no answer -> the call ends, missed for the transfer's target.

A member who stops ringing (timeout, leg ended, became unavailable) is released at once and the walk moves on.
Functions return ``(call, commands, follow)``: ``follow`` is None while the walk goes on, an action to run next
(a queue's final action, the busy rule's voicemail, hang up) or ``PASS_ON`` (try the line's next rule).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

from bridge.domain.commands import Command, ReleaseReason
from bridge.domain.events import LegOutcome
from bridge.domain.legs import music_on, release, ring_agent, ring_number
from bridge.domain.records import replace
from bridge.domain.scheme import (
    MAX_EVERYBODY_DEVICES,
    Action,
    Availability,
    Distribution,
    Employee,
    Hangup,
    HoldUntilFree,
    QueueGroup,
    ToVoicemail,
)
from bridge.domain.state import Call, Leg, Stage, State, Step, Walk, WalkKind, is_available, move

ENDLESS_LEG_SECONDS = 60.0
"""``everybody`` with ``rings_per_member = 0``: each leg rings this long, then rings again."""
OFFER_RINGS = 4
"""Hold until free: rings per offer when the queue itself says 0 (endless)."""


class PassOn:
    """The action cannot run (any more): the call goes on to the line's next rule."""


PASS_ON = PassOn()
Follow = Action | PassOn | None
WalkStep = tuple[Call, list[Command], Follow]


class Failure(Enum):
    """Why an employee's phone did not take the call (decides which of their own rules applies)."""

    NO_ANSWER = "no_answer"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"
    OTHER = "other"


BY_OUTCOME = {
    LegOutcome.NO_ANSWER: Failure.NO_ANSWER,
    LegOutcome.REJECTED: Failure.NO_ANSWER,
    LegOutcome.BUSY: Failure.BUSY,
    LegOutcome.UNAVAILABLE: Failure.UNAVAILABLE,
    LegOutcome.CONGESTION: Failure.OTHER,
    LegOutcome.FAILED: Failure.OTHER,
    LegOutcome.HANGUP: Failure.OTHER,
}
BY_AVAILABILITY = {
    Availability.BUSY: Failure.BUSY,
    Availability.UNREGISTERED: Failure.UNAVAILABLE,
    Availability.ABSENT: Failure.OTHER,
    Availability.NOT_CLOCKED_IN: Failure.OTHER,
    Availability.OFFLINE: Failure.OTHER,
}
RELEASED_WHEN = {
    Availability.BUSY: ReleaseReason.BUSY_ELSEWHERE,
    Availability.UNREGISTERED: ReleaseReason.UNREGISTERED,
    Availability.ABSENT: ReleaseReason.ABSENT,
    Availability.NOT_CLOCKED_IN: ReleaseReason.NOT_CLOCKED_IN,
    Availability.OFFLINE: ReleaseReason.OFFLINE,
}


def _ringing(step: Step, seconds: float, now: datetime) -> WalkStep:
    """The call now rings (music on; the timer at ``seconds`` from now, none when 0)."""
    call, commands = step
    call, music = music_on(call)
    timer = now + timedelta(seconds=seconds) if seconds else None
    return move(call, State.RINGING, timer=timer), [*music, *commands], None


# --- starting ----------------------------------------------------------------------------------------


def _skip_unknown(call: Call, exts: tuple[str, ...]) -> Call:
    """Warn about the extensions no employee has (an ``auto_map`` one Bitrix24 did not resolve): they are skipped."""
    unknown = [ext for ext in exts if ext not in call.plan.employees]
    if not unknown:
        return call
    return replace(call, warning=f"skipped as unavailable: {', '.join(unknown)} (no employee has this extension: "
                                 "not in [employees.map] and no active Bitrix24 user's UF_PHONE_INNER)")  # fmt: skip


def start_queue(call: Call, queue_id: str, now: datetime) -> WalkStep:
    queue = call.plan.queues.get(queue_id)
    if queue is None:
        return call, [], PASS_ON
    call = _skip_unknown(call, queue.members)
    if queue.distribution is Distribution.EVERYBODY:
        return _start_everybody(replace(call, last_queue=queue_id), queue, now)
    order = queue.members
    if queue.distribution is Distribution.EVENLY:
        order = tuple(sorted(order, key=lambda ext: call.answered_today.get(ext, 0)))
    elif queue.distribution is Distribution.WORKLOAD:
        counts = call.open_deals if queue.workload_of == "deals" else call.open_leads
        order = tuple(sorted(order, key=lambda ext: counts.get(ext, 0)))
    walk = Walk(WalkKind.QUEUE, queue=queue_id, order=order, ring_seconds=_seconds(call, queue.rings_per_member))
    return _next_member(replace(call, last_queue=queue_id, walk=walk), now)


def start_targets(call: Call, exts: tuple[str, ...], rings: int, now: datetime) -> WalkStep:
    walk = Walk(WalkKind.TARGETS, order=exts, ring_seconds=_seconds(call, rings))
    return _try_target(_skip_unknown(replace(call, walk=walk), exts), 0, now)


def start_number(call: Call, number: str, rings: int, now: datetime) -> WalkStep:
    seconds = _seconds(call, rings)
    call = replace(call, walk=Walk(WalkKind.NUMBER, ring_seconds=seconds))
    return _ringing(ring_number(call, number, seconds, now), seconds, now)


def start_hold(call: Call, action: HoldUntilFree, now: datetime) -> WalkStep:
    queue = call.plan.queues.get(action.queue)
    if queue is None:
        return call, [], PASS_ON
    until = now + timedelta(seconds=action.max_wait) if action.max_wait else None
    offer = _seconds(call, queue.rings_per_member or OFFER_RINGS)
    walk = Walk(WalkKind.HOLD, queue=queue.id, ring_seconds=offer, hold_until=until)
    return _offer(replace(call, walk=walk, last_queue=queue.id), now)


def _seconds(call: Call, rings: int) -> float:
    return rings * call.plan.ring_seconds


def _start_everybody(call: Call, queue: QueueGroup, now: datetime) -> WalkStep:
    members = [ext for ext in queue.members if is_available(call, ext)][:MAX_EVERYBODY_DEVICES]
    if not members:
        return call, [], queue.final
    group = _seconds(call, queue.rings_per_member)
    call = replace(call, walk=Walk(WalkKind.EVERYBODY, queue=queue.id, ring_seconds=group))
    commands: list[Command] = []
    for ext in members:
        call, more = ring_agent(call, ext, group or ENDLESS_LEG_SECONDS, now)
        commands += more
    return _ringing((call, commands), group, now)


# --- moving on ---------------------------------------------------------------------------------------


def current(call: Call) -> Walk:
    assert call.walk is not None, "a ringing or holding call always has a walk"
    return call.walk


def _next_member(call: Call, now: datetime) -> WalkStep:
    walk = current(call)
    queue = call.plan.queues[walk.queue]
    for position in range(walk.position + 1, len(walk.order) * queue.passes):
        ext = walk.order[position % len(walk.order)]
        if is_available(call, ext):
            rung = ring_agent(call, ext, walk.ring_seconds, now, walk=replace(walk, position=position))
            return _ringing(rung, walk.ring_seconds, now)
    return call, [], queue.final


def _try_target(call: Call, start: int, now: datetime) -> WalkStep:
    walk = current(call)
    for position in range(start, len(walk.order)):
        emp = call.plan.employees.get(walk.order[position])
        if emp is None or emp.dismissed:
            continue
        call = replace(call, walk=replace(walk, position=position, stage=Stage.DEVICE))
        availability = call.availability.get(emp.ext, Availability.AVAILABLE)
        if availability is Availability.AVAILABLE:
            seconds = _desk_seconds(call, emp, walk.ring_seconds)
            return _ringing(ring_agent(call, emp.ext, seconds, now), seconds, now)
        ruled = _employee_rule(call, emp, BY_AVAILABILITY[availability], now)
        if ruled is not None:
            return ruled
    return call, [], PASS_ON


def _desk_seconds(call: Call, emp: Employee, rule_seconds: float) -> float:
    """How long the employee's own phone rings: their ``no_answer_rings`` when it leads to their mobile."""
    if emp.no_answer_to_mobile and emp.mobile and emp.no_answer_rings:
        return _seconds(call, emp.no_answer_rings)
    return rule_seconds


def _employee_rule(call: Call, emp: Employee, failure: Failure, now: datetime) -> WalkStep | None:
    """The employee's own rule for ``failure``, or None when they have none (try the next target)."""
    walk = current(call)
    busy_rule = emp.on_busy if failure is Failure.BUSY else None
    if isinstance(busy_rule, ToVoicemail):
        return call, [], ToVoicemail(busy_rule.ext or emp.ext)
    if busy_rule is not None:
        seconds = _seconds(call, busy_rule.rings)
        call = replace(call, walk=replace(walk, stage=Stage.FORWARD))
        return _ringing(ring_number(call, busy_rule.number, seconds, now), seconds, now)
    to_mobile = (failure is Failure.UNAVAILABLE and emp.unavailable_to_mobile) or (
        failure is Failure.NO_ANSWER and emp.no_answer_to_mobile
    )
    if to_mobile and emp.mobile:
        call = replace(call, walk=replace(walk, stage=Stage.MOBILE))
        step = ring_number(call, emp.mobile, walk.ring_seconds, now, ext=emp.ext, user_id=emp.user_id)
        return _ringing(step, walk.ring_seconds, now)
    return None


def _offer(call: Call, now: datetime) -> WalkStep:
    """Hold until free: offer the call to the first free member not offered yet, else hold with music."""
    walk = current(call)
    for ext in call.plan.queues[walk.queue].members:
        if ext not in walk.offered and is_available(call, ext):
            call = replace(call, walk=replace(walk, offered=walk.offered | {ext}))
            return _ringing(ring_agent(call, ext, walk.ring_seconds, now), walk.ring_seconds, now)
    call, music = music_on(call)
    return move(call, State.HOLDING, timer=None), music, None


def _after_stop(call: Call, failure: Failure, now: datetime) -> WalkStep:
    """A leg stopped ringing (already released): what the walk does next."""
    walk = current(call)
    if walk.kind is WalkKind.QUEUE:
        return _next_member(call, now)
    if walk.kind is WalkKind.EVERYBODY:
        return call, [], None if call.ringing else call.plan.queues[walk.queue].final
    if walk.kind is WalkKind.TARGETS:
        emp = call.plan.employees[walk.order[walk.position]]
        ruled = _employee_rule(call, emp, failure, now) if walk.stage is Stage.DEVICE else None
        return ruled or _try_target(call, walk.position + 1, now)
    if walk.kind is WalkKind.HOLD:
        return _offer(call, now)
    if walk.kind is WalkKind.NUMBER:
        return call, [], PASS_ON
    return call, [], Hangup()


# --- events ------------------------------------------------------------------------------------------


def on_timeout(call: Call, now: datetime) -> WalkStep:
    """The deadline passed while ringing or holding: hold's ``max_wait``, else the ring timer."""
    walk = current(call)
    if walk.hold_until is not None and now >= walk.hold_until:
        call, commands = release(call, call.ringing, ReleaseReason.TIMEOUT)
        return call, commands, Hangup()
    call, commands = release(call, call.ringing, ReleaseReason.TIMEOUT, on_timeout=True)
    call, more, follow = _after_stop(call, Failure.NO_ANSWER, now)
    return call, commands + more, follow


def on_leg_ended(call: Call, leg: Leg, outcome: LegOutcome, now: datetime) -> WalkStep:
    walk = current(call)
    call, _ = release(call, [leg], ReleaseReason.CALL_ENDED, cancel=False)
    endless = walk.kind is WalkKind.EVERYBODY and not walk.ring_seconds
    if endless and outcome is LegOutcome.NO_ANSWER:
        call, commands = ring_agent(call, leg.ext, ENDLESS_LEG_SECONDS, now)
        return call, commands, None
    return _after_stop(call, BY_OUTCOME[outcome], now)


def resume(call: Call, walk: Walk | None, now: datetime) -> WalkStep:
    """The leg that answered ``walk`` never joined the caller: the walk goes on as after a failed leg (without
    a walk, e.g. an answer that had won over a prompt, the line's next rule runs)."""
    call = move(call, State.RINGING)
    if walk is None:
        return call, [], PASS_ON
    return _after_stop(replace(call, walk=walk), Failure.OTHER, now)


def on_availability(call: Call, ext: str, availability: Availability, now: datetime) -> WalkStep:
    """``ext``'s availability changed (already recorded in ``call.availability``)."""
    walk = current(call)
    legs = [leg for leg in call.ringing if leg.ext == ext and not leg.number]
    if availability is Availability.AVAILABLE:
        return _became_free(call, walk, ext, legs, now)
    if not legs:
        return call, [], None
    call, commands = release(call, legs, RELEASED_WHEN[availability])
    call, more, follow = _after_stop(call, BY_AVAILABILITY[availability], now)
    return call, commands + more, follow


def ignores_availability(call: Call, ext: str, availability: Availability) -> bool:
    """True when :func:`on_availability` would change nothing: no leg of ours rings ``ext``, and it did not become
    free or is no member of the queue being walked."""
    if any(leg.ext == ext and not leg.number for leg in call.ringing):
        return False
    walk = current(call)
    return availability is not Availability.AVAILABLE or ext not in (
        call.plan.queues[walk.queue].members if walk.queue else ()
    )


def watched(call: Call) -> frozenset[str]:
    """The extensions :func:`ignores_availability` may say False for: those our legs ring, the walked queue's
    members."""
    walk = call.walk
    assert walk is not None, "a walking call always has a walk"
    exts: tuple[str, ...] = call.plan.queues[walk.queue].members if walk.queue else ()
    for leg in call.ringing:  # a loop, not a generator: a leg or two, at every step that changes them
        if not leg.number:
            exts += (leg.ext,)
    return frozenset(exts)


def _became_free(call: Call, walk: Walk, ext: str, legs: list[Leg], now: datetime) -> WalkStep:
    members = call.plan.queues[walk.queue].members if walk.queue else ()
    if ext not in members:
        return call, [], None
    if walk.kind is WalkKind.HOLD:
        call = replace(call, walk=replace(walk, offered=walk.offered - {ext}))
        return _offer(call, now) if call.state is State.HOLDING else (call, [], None)
    if walk.kind is WalkKind.EVERYBODY and not legs and len(call.ringing) < MAX_EVERYBODY_DEVICES:
        call, commands = ring_agent(call, ext, walk.ring_seconds or ENDLESS_LEG_SECONDS, now)
        return call, commands, None
    return call, [], None
