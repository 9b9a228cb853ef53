"""Plans, times and a small driver shared by the domain tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.domain.call import start_call, step
from bridge.domain.commands import Command
from bridge.domain.events import CallStarted, Event
from bridge.domain.scheme import (
    Action,
    Always,
    Availability,
    Distribution,
    Employee,
    Hangup,
    IvrMenu,
    Line,
    Plan,
    QueueGroup,
    Rule,
)
from bridge.domain.state import Call

T0 = datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
"""A Tuesday, 13:00 in Moscow."""
CALLER = "79161234567"
LINE = "74951112233"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def employees(*exts: str, **rules: Any) -> dict[str, Employee]:
    """Employees ``ext`` with user id ``int(ext) - 1000`` and mobile ``7916000<ext>``; ``rules`` per ext."""
    result = {}
    for ext in exts:
        emp = Employee(ext, int(ext) - 1000, name=f"E{ext}", mobile=f"7916000{ext}")
        result[ext] = replace(emp, **rules.get(f"e{ext}", {}))
    return result


STAFF = employees("1001", "1002", "1003", "1004", "1005")


def queue(qid: str, *members: str, dist: Distribution = Distribution.IN_ORDER, **kw: Any) -> QueueGroup:
    return QueueGroup(qid, tuple(members), distribution=dist, **kw)


def plan(
    *rules: Rule,
    fallback: Action | None = None,
    queues: tuple[QueueGroup, ...] = (),
    menus: tuple[IvrMenu, ...] = (),
    staff: dict[str, Employee] | None = None,
    **line_kw: Any,
) -> Plan:
    line = Line(LINE, name="Sales", rules=rules, fallback=fallback or Hangup(), **line_kw)
    return Plan(
        lines={LINE: line},
        queues={q.id: q for q in queues},
        menus={m.id: m for m in menus},
        employees=dict(STAFF if staff is None else staff),
    )


def route(action: Action, **kw: Any) -> Plan:
    """A plan whose line always runs ``action``."""
    return plan(Rule(Always(), action), **kw)


def started(**availability: Availability) -> CallStarted:
    return CallStarted(LINE, CALLER, crm_key="k", availability={k.lstrip("e"): v for k, v in availability.items()})


class Driver:
    """Steps one call and keeps every step's commands; ``call`` is the call after the last step."""

    def __init__(self, the_plan: Plan, call_id: str = "c") -> None:
        self.call: Call = start_call(the_plan, call_id, T0)
        self.log: list[tuple[datetime, Event, list[Command]]] = []

    def __call__(self, event: Event, seconds: float = 0.0) -> list[Command]:
        now = at(seconds)
        self.call, commands = step(self.call, event, now)
        self.log.append((now, event, commands))
        return commands

    def all_commands(self) -> list[Command]:
        return [c for _, _, cmds in self.log for c in cmds]
