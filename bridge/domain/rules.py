"""Conditions of a line's rule chain, and whether a line needs the CRM lookup before it can route."""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from bridge.domain.events import CrmClient
from bridge.domain.scheme import (
    Action,
    Always,
    CallerPrefix,
    Condition,
    CrmField,
    InHours,
    KnownClient,
    Line,
    Plan,
    ToIvr,
    ToQueue,
    ToResponsible,
)

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
_TEXT_OPS = frozenset({"=", "!="})


def holds(condition: Condition, plan: Plan, caller: str, client: CrmClient | None, now: datetime) -> bool:
    """Whether ``condition`` is true for this caller now. An unknown schedule counts as closed."""
    if isinstance(condition, Always):
        return True
    if isinstance(condition, InHours):
        schedule = plan.schedules.get(condition.schedule)
        is_open = schedule is not None and schedule.is_open(now)
        return is_open == condition.inside
    if isinstance(condition, CallerPrefix):
        digits = "".join(ch for ch in caller if ch.isdigit())
        return any(digits.startswith(prefix) for prefix in condition.prefixes if prefix)
    if isinstance(condition, KnownClient):
        return (client is not None) == condition.known
    return client is not None and _field_matches(condition, client)


def _field_matches(condition: CrmField, client: CrmClient) -> bool:
    """Numeric comparison when both sides are numbers (``150000.00 >= 100000``). Otherwise ``=``/``!=``
    compare the text and an ordering operator is false (a deal amount that is not a number is not big)."""
    compare = _COMPARE.get(condition.op)
    value = client.fields.get(condition.field)
    if compare is None or value is None:
        return False
    left, right = _number(value), _number(condition.value)
    if left is not None and right is not None:
        return bool(compare(left, right))
    return condition.op in _TEXT_OPS and bool(compare(value.strip(), condition.value.strip()))


def _number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip().replace(" ", "").replace(",", "."))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def needs_crm(plan: Plan, line: Line) -> bool:
    """Whether any rule of ``line`` (or any action reachable from it) needs to know who the caller is; a line that
    distributes leads does (only an unknown caller's call makes one)."""
    if line.lead_distribution or any(isinstance(rule.when, KnownClient | CrmField) for rule in line.rules):
        return True
    seen: set[str] = set()
    todo: list[Action] = [rule.then for rule in line.rules] + [line.fallback]
    while todo:
        action = todo.pop()
        if isinstance(action, ToResponsible):
            return True
        todo += _leads_to(plan, action, seen)
    return False


def _leads_to(plan: Plan, action: Action, seen: set[str]) -> list[Action]:
    """Actions that ``action`` may run next (a queue's final action, a menu's options), each place once."""
    if isinstance(action, ToQueue):
        key = f"queue:{action.queue}"
        queue = plan.queues.get(action.queue)
        found = [queue.final] if queue else []
    elif isinstance(action, ToIvr):
        key = f"menu:{action.menu}"
        menu = plan.menus.get(action.menu)
        found = [*(a for _, a in menu.options), menu.on_fail] if menu else []
    else:
        return []
    if key in seen:
        return []
    seen.add(key)
    return found
