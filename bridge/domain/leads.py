"""Lead distribution: which manager gets the lead a call created, and why.

A line may name a distribution (``Line.lead_distribution``). When its call ends and the caller was unknown to the
CRM (so ``register`` with ``CRM_CREATE`` made a lead), the core picks a manager here and emits ``CrmAssignLead``
after the ``finish`` (which makes the finishing user responsible for what the call created: the update must come
after it). The missed-call task goes to the same manager.

Order of the decision:

1. outside the distribution's ``hours``: the on-duty manager (``off_hours``), or nobody (the line's owner keeps it);
2. the first rule whose conditions all hold -> its manager, or its queue's managers. A rule that also needs a field
   of the lead (``field:``), whose other conditions hold, is decided at the hand-over, which reads the lead: its pick
   travels in ``CrmAssignLead.field_rules`` and the search goes on as if it did not match (what happens without);
3. else the distribution's own managers;
4. among the candidates, skipping the dismissed, the absent and those not clocked in (outside their working day):
   ``round_robin`` takes the one after the candidate this distribution assigned last; ``workload`` the one with the
   fewest open leads (ties: list order).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from bridge.domain.commands import Command, CrmAssignLead, CrmMissedTask
from bridge.domain.events import CrmClient
from bridge.domain.rules import holds
from bridge.domain.scheme import (
    Availability,
    FromSource,
    LeadCalls,
    LeadCondition,
    LeadDistribution,
    LeadField,
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
    choices: tuple[FieldChoice, ...] = ()
    """Picks of the rules that need a field of the lead, in order: the hand-over takes the first the lead matches,
    else this pick."""


@dataclass(frozen=True)
class FieldChoice:
    fields: tuple[LeadField, ...]
    pick: LeadPick


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
    choices: list[FieldChoice] = []
    for index, rule in enumerate(dist.rules):
        fields = tuple(c for c in rule.when if isinstance(c, LeadField))
        if all(_holds(c, plan, line, caller, now) for c in rule.when if not isinstance(c, LeadField)):
            name = f"rule {rule.name or index + 1}"
            if not fields:
                candidates, source = rule.managers, name
                break
            choices.append(FieldChoice(fields, _choose(dist, plan, facts, rule.managers, name)))
    pick = _choose(dist, plan, facts, candidates, source)
    if not choices:
        return pick
    ifs = [f"if the lead has {describe_fields(c.fields)}: {c.pick.why}" for c in choices]
    return replace(pick, why="; ".join([*ifs, f"otherwise {pick.why}"]), choices=tuple(choices))


def _choose(dist: LeadDistribution, plan: Plan, facts: LeadFacts, candidates: tuple[str, ...], source: str) -> LeadPick:
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
    assert not isinstance(cond, LeadField), "a field of the lead is known only at the hand-over"
    return holds(cond, plan, caller, None, now)


def describe_fields(fields: tuple[LeadField, ...]) -> str:
    return " and ".join(f"{f.name} = {' or '.join(f.values)}" if f.values else f"{f.name} filled in" for f in fields)


def fields_text(fields: tuple[LeadField, ...]) -> str:
    """``fields`` as the JSON a ``CrmAssignLead`` carries (``[[name, [values...]], ...]``)."""
    return json.dumps([[f.name, list(f.values)] for f in fields], ensure_ascii=False, separators=(",", ":"))


def fields_from_text(text: str) -> tuple[LeadField, ...]:
    """The inverse of :func:`fields_text`; ``ValueError`` for text it did not make."""
    try:
        data = json.loads(text)
        fields = tuple(LeadField(str(name), tuple(str(v) for v in values)) for name, values in data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a lead field rule: {text!r}") from exc
    return fields


def _values(raw: object) -> list[str]:
    """A field's value as crm.lead.get returns it, as texts: a list field (UF_ multiple, PHONE/EMAIL multifields,
    whose items are ``{"VALUE": ...}``) gives its items; empty values (None, "", [], false) give none."""
    items = raw if isinstance(raw, list) else [raw]
    texts = [
        str(i.get("VALUE", "")) if isinstance(i, dict) else str(i) for i in items if i is not None and i is not False
    ]
    return [t.strip().casefold() for t in texts if t.strip()]


def lead_matches(fields: tuple[LeadField, ...], lead: Mapping[str, object]) -> bool:
    """Whether the lead (``crm.lead.get``'s result) has every one of ``fields``."""
    for f in fields:
        have = _values(lead.get(f.name))
        if not have or (f.values and not {v.casefold() for v in f.values} & set(have)):
            return False
    return True


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
    if not pick.user_id and not pick.choices:
        return pick, []
    message = f"A new lead from a call from {call.caller} to line {line.name or line.number} is yours."
    assign = CrmAssignLead(
        leg.id, pick.user_id, message, dist.id, pick.why,
        field_rules=tuple(fields_text(c.fields) for c in pick.choices),
        field_users=tuple(c.pick.user_id for c in pick.choices),
        field_whys=tuple(c.pick.why for c in pick.choices),
    )  # fmt: skip
    return pick, [assign]


def carry_task(assign: list[Command], notices: list[Command]) -> tuple[list[Command], list[Command]]:
    """When the manager depends on a field of the lead, the missed-call task (not a voicemail's, which waits for its
    recording) travels with the hand-over, which creates it for the manager it chose: one task, the right
    responsible. Returns the hand-over and the notices left."""
    task = next((n for n in notices if isinstance(n, CrmMissedTask) and not n.crm_leg), None)
    if task is None or not assign or not isinstance(assign[0], CrmAssignLead) or not assign[0].field_rules:
        return assign, notices
    carried = replace(assign[0], task_title=task.title, task_description=task.description, task_user_id=task.user_id)
    return [carried], [n for n in notices if n is not task]
