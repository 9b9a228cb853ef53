"""Plans, times and a small driver shared by the domain tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.domain.call import start_call, step
from bridge.domain.commands import CallType, Command, CrmRegister
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
from bridge.domain.state import Call, CrmLeg, Leg

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

    def __init__(self, the_plan: Plan, call_id: str = "c", start: datetime = T0) -> None:
        self.start = start
        self.call: Call = start_call(the_plan, call_id, start)
        self.log: list[tuple[datetime, Event, list[Command]]] = []

    def __call__(self, event: Event, seconds: float = 0.0) -> list[Command]:
        now = self.start + timedelta(seconds=seconds)
        self.call, commands = step(self.call, event, now)
        self.log.append((now, event, commands))
        return commands

    def all_commands(self) -> list[Command]:
        return [c for _, _, cmds in self.log for c in cmds]


# --- table-driven scripts: the whole state and the whole command list after every step -----------------

Expect = tuple[float, Event, list[Command], dict[str, Any]]
"""(seconds after T0, event, exactly the commands expected, the fields of the call that change)."""


def play(the_plan: Plan, script: list[Expect], call: Call | None = None) -> Call:
    """Step ``script`` and after each step compare every command and every field of the call.

    The expected call is the previous one with ``changes`` applied; ``ignored``/``warning`` are per step and the
    grace of a ring timeout lasts one handled step, so those three reset unless ``changes`` names them.
    """
    call = call or start_call(the_plan, "c", T0)
    expected = call
    for number, (seconds, event, commands, changes) in enumerate(script, 1):
        call, got = step(call, event, at(seconds))
        reset: dict[str, Any] = {"ignored": "", "warning": ""}
        if "ignored" not in changes:
            reset["grace"] = ()
        expected = replace(expected, **{**reset, **changes})
        where = f"step {number} ({event!r} at {seconds}s)"
        assert got == commands, f"{where}: commands\n got      {got}\n expected {commands}"
        wrong = {f: (getattr(call, f), getattr(expected, f)) for f in call.__dataclass_fields__}
        wrong = {f: v for f, v in wrong.items() if v[0] != v[1]}
        assert not wrong, f"{where}: fields (got, expected): {wrong}"
    return call


def leg(serial: int, ext: str = "", t: float = 0.0, number: str = "", user: int | None = None) -> Leg:
    """The leg the core names ``c-leg<serial>``; ``user`` defaults to the employee's (none for a number)."""
    uid = user if user is not None else (int(ext) - 1000 if ext and not number else 0)
    return Leg(f"c-leg{serial}", at(t), ext=ext, user_id=uid, number=number)


def crm(
    n: int,
    user: int,
    shown: tuple[int, ...] = (),
    finished: bool = False,
    recording: str = "",
    ready: bool = False,
    attached: bool = False,
) -> CrmLeg:
    return CrmLeg(f"k.{n}", user, shown, finished, recording, ready, attached)


def register(user: int, n: int = 1, t: float = 0.0, call_type: CallType = CallType.INCOMING, **kw: Any) -> CrmRegister:
    return CrmRegister(f"k.{n}", user, CALLER, call_type, LINE, at(t), show=False, **kw)


START = {"line": LINE, "caller": CALLER, "crm_key": "k"}
"""What ``started()`` sets on every call."""
