"""Running an action, and the line's rule chain that decides which action runs.

A rule chain is tried top to bottom from ``call.rule_index``; the first rule whose condition holds runs its
action. An action that cannot run (or stops being able to: nobody left to ring) passes the call on to the next
rule, then to the line's fallback, then the call is hung up as missed. A queue that rings out runs its own final
action. ``MAX_HOPS`` actions per call guard against routing loops a configuration may contain (a queue whose
final action is itself): past it the call is hung up as missed, with a warning.
"""

from __future__ import annotations

from datetime import datetime

from bridge.domain import ivr, walk
from bridge.domain.commands import CallType
from bridge.domain.ending import end_missed
from bridge.domain.records import replace
from bridge.domain.rules import holds
from bridge.domain.scheme import (
    Action,
    Hangup,
    HoldUntilFree,
    ToEmployee,
    ToIvr,
    ToNumber,
    ToQueue,
    ToResponsible,
    ToVoicemail,
)
from bridge.domain.state import Call, Step
from bridge.domain.walk import Follow, PassOn, WalkStep

MAX_HOPS = 20


def run(call: Call, action: Action, now: datetime) -> Step:
    """Run ``action`` and whatever it leads to at once (a final action, the next rule)."""
    if call.hops >= MAX_HOPS:
        call = replace(call, warning=f"routing loop: more than {MAX_HOPS} actions, hanging up")
        return end_missed(call, now, hang_up=True)
    call = replace(call, hops=call.hops + 1)
    call, commands, follow = _start(call, action, now)
    call, more = then(call, follow, now)
    return call, commands + more


def then(call: Call, follow: Follow, now: datetime) -> Step:
    """Carry out what a walk, a menu or an action returned: nothing, the next rule, or another action."""
    if follow is None:
        return call, []
    if isinstance(follow, PassOn):
        return next_rule(call, now)
    return run(call, follow, now)


def first_rule(call: Call, now: datetime) -> Step:
    """Route a new call: a client called back goes to the line's callback queue, if it has one; else the rules."""
    queue = call.plan.lines[call.line].callback_queue
    if call.call_type is CallType.CALLBACK and queue:
        return run(call, ToQueue(queue), now)
    return next_rule(call, now)


def next_rule(call: Call, now: datetime) -> Step:
    line = call.plan.lines[call.line]
    for index in range(call.rule_index, len(line.rules)):
        rule = line.rules[index]
        if holds(rule.when, call.plan, call.caller, call.client, now):
            return run(replace(call, rule_index=index + 1), rule.then, now)
    if call.rule_index <= len(line.rules):
        return run(replace(call, rule_index=len(line.rules) + 1), line.fallback, now)
    return end_missed(call, now, hang_up=True)


def _start(call: Call, action: Action, now: datetime) -> WalkStep:
    if isinstance(action, ToQueue):
        return walk.start_queue(call, action.queue, now)
    if isinstance(action, ToEmployee):
        return walk.start_targets(call, (action.ext,), action.rings, now)
    if isinstance(action, ToResponsible):
        return walk.start_targets(call, responsible_targets(call, action), action.rings, now)
    if isinstance(action, ToNumber):
        return walk.start_number(call, action.number, action.rings, now)
    if isinstance(action, HoldUntilFree):
        return walk.start_hold(call, action, now)
    if isinstance(action, ToIvr):
        return ivr.enter_menu(call, action.menu)
    if isinstance(action, ToVoicemail):
        return ivr.enter_voicemail(call, action, now)
    assert isinstance(action, Hangup)
    call, commands = end_missed(call, now, hang_up=True)
    return call, commands, None


def responsible_targets(call: Call, action: ToResponsible) -> tuple[str, ...]:
    """The CRM-responsible manager's extension, then (if asked) their supervisor's; empty if unknown."""
    client = call.client
    emp = call.plan.employee_by_user(client.responsible_user_id) if client and client.responsible_user_id else None
    if emp is None:
        return ()
    if action.supervisor and emp.supervisor_ext:
        return emp.ext, emp.supervisor_ext
    return (emp.ext,)
