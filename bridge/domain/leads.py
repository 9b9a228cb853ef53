"""Lead distribution: which manager gets the lead a call created, and why.

A line may name a distribution (``Line.lead_distribution``). When its call ends and the caller was unknown to the
CRM (so ``register`` with ``CRM_CREATE`` made a lead), the core picks a manager here and emits ``CrmAssignLead``
after the ``finish`` (which makes the finishing user responsible for what the call created: the update must come
after it). The missed-call task goes to the same manager.

Order of the decision:

1. outside the distribution's ``hours``: the on-duty manager (``off_hours``), or nobody (the line's owner keeps it);
2. the first rule whose conditions all hold -> its manager, or its queue's managers;
3. else the distribution's own managers;
4. among the candidates, skipping the dismissed, the absent and those not clocked in (outside their working day):
   ``round_robin`` takes the one after the candidate this distribution assigned last; ``workload`` the one with the
   fewest open leads (ties: list order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from bridge.domain.commands import Command, CrmAssignLead
from bridge.domain.events import CrmClient
from bridge.domain.rules import holds
from bridge.domain.scheme import (
    Availability,
    FromSource,
    LeadCalls,
    LeadCondition,
    LeadDistribution,
    LeadMode,
    Line,
    OnLine,
    Plan,
)
from bridge.domain.state import Call


@dataclass(frozen=True)
class LeadPick:
    """The manager chosen (``ext`` empty: none, the lead stays where ``finish`` put it) and why."""

    ext: str
    user_id: int
    why: str


@dataclass(frozen=True)
class LeadFacts:
    """What the shell knew at the call's start: availability, open leads per extension, and per distribution its
    managers in the order they last got a lead (the most recent last)."""

    availability: Mapping[str, Availability]
    open_leads: Mapping[str, int]
    last_assigned: Mapping[str, tuple[str, ...]]


def applies(dist: LeadDistribution, client: CrmClient | None, answered: bool) -> bool:
    """Whether the call's lead is distributed: the caller was unknown (a lead was made) and the call qualifies."""
    return client is None and (dist.calls is LeadCalls.ALL or not answered)


def pick_manager(
    dist: LeadDistribution, plan: Plan, line: Line, caller: str, facts: LeadFacts, now: datetime
) -> LeadPick:
    schedule = plan.schedules.get(dist.hours) if dist.hours else None
    if schedule is not None and not schedule.is_open(now):
        duty = plan.employees.get(dist.off_hours)
        if duty is not None and not duty.dismissed:
            return LeadPick(duty.ext, duty.user_id, f"outside hours {dist.hours!r}: the on-duty manager {duty.ext}")
        return LeadPick("", 0, f"outside hours {dist.hours!r}: the lead stays with the line's owner")
    candidates, source = dist.managers, "the managers"
    for index, rule in enumerate(dist.rules):
        if all(_holds(cond, plan, line, caller, now) for cond in rule.when):
            candidates, source = rule.managers, f"rule {rule.name or index + 1}"
            break
    ready = [ext for ext in candidates if _ready(plan, facts, ext)]
    if not ready:
        return LeadPick("", 0, f"{source}: nobody is present, the lead stays with the line's owner")
    if dist.mode is LeadMode.WORKLOAD:
        ext = min(ready, key=lambda e: facts.open_leads.get(e, 0))
        why = f"{source}, workload: {ext} has the fewest open leads ({facts.open_leads.get(ext, 0)})"
    else:
        ext = _after(candidates, ready, facts.last_assigned.get(dist.id, ()))
        why = f"{source}, round robin: {ext} is next"
    skipped = [e for e in candidates if e not in ready]
    if skipped:
        why += f" (skipped, absent or off duty: {', '.join(skipped)})"
    return LeadPick(ext, plan.employees[ext].user_id, why)


def _holds(cond: LeadCondition, plan: Plan, line: Line, caller: str, now: datetime) -> bool:
    if isinstance(cond, OnLine):
        return line.number in cond.numbers
    if isinstance(cond, FromSource):
        return line.crm_source in cond.sources
    return holds(cond, plan, caller, None, now)


def _ready(plan: Plan, facts: LeadFacts, ext: str) -> bool:
    emp = plan.employees.get(ext)
    state = facts.availability.get(ext, Availability.AVAILABLE)
    return emp is not None and not emp.dismissed and state not in (Availability.ABSENT, Availability.NOT_CLOCKED_IN)


def _after(order: tuple[str, ...], ready: list[str], recent: tuple[str, ...]) -> str:
    """The first of ``ready`` after the one of ``order`` that got a lead last (``recent``), wrapping round."""
    last = next((ext for ext in reversed(recent) if ext in order), None)
    start = order.index(last) + 1 if last is not None else 0
    rotated = order[start:] + order[:start]
    return next(ext for ext in rotated if ext in ready)


def lead_step(call: Call, answered: bool, now: datetime) -> tuple[LeadPick | None, list[Command]]:
    """The manager for the lead this call's open CRM leg created, and the ``CrmAssignLead`` that hands it over
    (journaled after that leg's finish); ``(None, [])`` when the line distributes no leads or the call made none."""
    line = call.plan.lines.get(call.line)
    dist = call.plan.lead_distributions.get(line.lead_distribution) if line else None
    leg = call.crm_leg
    if line is None or dist is None or leg is None or not line.crm_create or not applies(dist, call.client, answered):
        return None, []
    facts = LeadFacts(call.availability, call.open_leads, call.last_assigned)
    pick = pick_manager(dist, call.plan, line, call.caller, facts, now)
    if not pick.user_id:
        return pick, []
    message = f"A new lead from a call from {call.caller} to line {line.name or line.number} is yours."
    return pick, [CrmAssignLead(leg.id, pick.user_id, message, dist.id, pick.why)]
