"""What a line's calls do while the bridge is away: a plain-dialplan approximation of the line's scheme.

The dialplan cannot ask the CRM, read device states the way the walk does, or play menus, so the approximation
is deliberately simple: the line's catch-all action (its first ``always`` rule, else its ``fallback``) is
followed through queues and finals; a queue rings all its members at once for its rings (at least 3; at most
:data:`~bridge.domain.scheme.MAX_EVERYBODY_DEVICES` devices), a menu is replaced by its ``on_fail`` action, "the
responsible manager" by the line's default employee, and a walk that ends without an answer takes a message
for the line's owner. A per-line ``pbx_fallback`` replaces the catch-all action.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.domain.scheme import (
    MAX_EVERYBODY_DEVICES,
    Action,
    Always,
    Hangup,
    HoldUntilFree,
    Line,
    Plan,
    ToEmployee,
    ToIvr,
    ToNumber,
    ToQueue,
    ToResponsible,
    ToVoicemail,
)

MIN_RINGS = 3
"""A group rung at once rings at least this many rings (``routing.ring_seconds`` each), whatever its share."""
HOLD_SECONDS = 300
"""``hold:QUEUE``: how long the caller waits with music while the members ring."""


@dataclass(frozen=True)
class Ring:
    """Ring these extensions at once for ``seconds``; ``music``: the caller hears music on hold instead of ringback."""

    exts: tuple[str, ...]
    seconds: int
    music: bool = False


@dataclass(frozen=True)
class DialNumber:
    """Forward the caller to an external number (as the CRM holds it; dial rules apply when rendered)."""

    number: str
    seconds: int


@dataclass(frozen=True)
class TakeMessage:
    """Answer, play the voicemail prompt and record a message for ``ext``."""

    ext: str


Step = Ring | DialNumber | TakeMessage


def catch_all(line: Line) -> Action:
    """The action the fallback starts from: the line's ``pbx_fallback``, its first ``always`` rule, its fallback."""
    if line.pbx_fallback is not None:
        return line.pbx_fallback
    for rule in line.rules:
        if isinstance(rule.when, Always):
            return rule.then
    return line.fallback


def fallback_steps(plan: Plan, line: Line) -> tuple[Step, ...]:
    """The steps the dialplan runs, in order, until someone answers; ends with a message when one is possible."""
    steps: list[Step] = []
    _follow(plan, line, catch_all(line), steps, seen=set())
    owner = line.default_ext
    ends = any(isinstance(s, TakeMessage | DialNumber) for s in steps)
    if owner and not ends and not isinstance(line.pbx_fallback, Hangup):  # hangup: the operator's explicit choice
        steps.append(TakeMessage(owner))
    return tuple(steps)


def _ring_seconds(plan: Plan, rings: int) -> int:
    """Dial's timeout: whole seconds, at least one."""
    return max(1, round(max(MIN_RINGS, rings) * plan.ring_seconds))


def _follow(plan: Plan, line: Line, action: Action, steps: list[Step], seen: set[str]) -> None:
    if isinstance(action, ToQueue | HoldUntilFree):
        queue = plan.queues.get(action.queue)
        if queue is None or action.queue in seen:
            return
        seen.add(action.queue)
        members = tuple(m for m in queue.members if m in plan.employees)[:MAX_EVERYBODY_DEVICES]
        if isinstance(action, HoldUntilFree):
            steps.append(Ring(members, HOLD_SECONDS, music=True))
            return
        steps.append(Ring(members, _ring_seconds(plan, queue.rings_per_member)))
        final = queue.final
        if isinstance(final, ToVoicemail) and not final.ext:
            final = ToVoicemail(queue.missed_owner or line.default_ext)
        _follow(plan, line, final, steps, seen)
    elif isinstance(action, ToEmployee):
        steps.append(Ring((action.ext,), _ring_seconds(plan, action.rings)))
    elif isinstance(action, ToResponsible):
        if line.default_ext:
            steps.append(Ring((line.default_ext,), _ring_seconds(plan, action.rings)))
    elif isinstance(action, ToIvr):
        menu = plan.menus.get(action.menu)
        if menu is not None and f"ivr:{action.menu}" not in seen:
            seen.add(f"ivr:{action.menu}")
            _follow(plan, line, menu.on_fail, steps, seen)
    elif isinstance(action, ToNumber):
        steps.append(DialNumber(action.number, _ring_seconds(plan, action.rings)))
    elif isinstance(action, ToVoicemail) and (action.ext or line.default_ext):
        steps.append(TakeMessage(action.ext or line.default_ext))
