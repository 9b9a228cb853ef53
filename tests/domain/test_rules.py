"""Rule conditions, working-hours schedules and whether a line needs the CRM lookup."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from bridge.domain.events import CrmClient
from bridge.domain.rules import holds, needs_crm
from bridge.domain.schedule import Schedule
from bridge.domain.scheme import (
    Action,
    Always,
    CallerPrefix,
    Condition,
    CrmField,
    Hangup,
    HoldUntilFree,
    InHours,
    IvrMenu,
    KnownClient,
    Line,
    Plan,
    QueueGroup,
    Rule,
    ToEmployee,
    ToIvr,
    ToQueue,
    ToResponsible,
)
from tests.domain.builders import STAFF, T0

OFFICE = Schedule("office", "Europe/Moscow", weekly={2: ((time(9), time(18)),)})
PLAN = Plan(lines={}, queues={}, menus={}, employees=STAFF, schedules={"office": OFFICE})


def client(**fields: str) -> CrmClient:
    return CrmClient("CONTACT", 1, 2, fields)


@pytest.mark.parametrize(
    ("condition", "caller", "who", "expected"),
    [
        (Always(), "", None, True),
        (InHours("office"), "", None, True),  # Tuesday 13:00 in Moscow
        (InHours("office", inside=False), "", None, False),
        (InHours("nope"), "", None, False),  # an unknown schedule is closed
        (InHours("nope", inside=False), "", None, True),
        (CallerPrefix(("7812", "7495")), "+7 (495) 111-22-33", None, True),
        (CallerPrefix(("7812",)), "74951112233", None, False),
        (CallerPrefix(("",)), "74951112233", None, False),
        (KnownClient(), "", client(), True),
        (KnownClient(), "", None, False),
        (KnownClient(known=False), "", None, True),
        (CrmField("OPPORTUNITY", ">", "100000"), "", client(OPPORTUNITY="150000.00"), True),
        (CrmField("OPPORTUNITY", ">", "100000"), "", client(OPPORTUNITY="99999.99"), False),
        (CrmField("OPPORTUNITY", ">=", "100000"), "", client(OPPORTUNITY="100000.00"), True),
        (CrmField("OPPORTUNITY", "=", "100000"), "", client(OPPORTUNITY="100 000,00"), True),
        (CrmField("OPPORTUNITY", "<", "100000"), "", client(OPPORTUNITY="5e3"), True),
        (CrmField("OPPORTUNITY", "<=", "9"), "", client(OPPORTUNITY="10"), False),  # numeric, not text
        (CrmField("OPPORTUNITY", "!=", "0"), "", client(OPPORTUNITY="0.0"), False),
        (CrmField("OPPORTUNITY", ">", "100000"), "", client(OPPORTUNITY="NaN"), False),  # not a number: not big
        (CrmField("OPPORTUNITY", "<", "100000"), "", client(OPPORTUNITY="n/a"), False),
        (CrmField("OPPORTUNITY", "=", "Infinity"), "", client(OPPORTUNITY="Infinity"), True),  # text
        (CrmField("SOURCE", "=", "VIP"), "", client(SOURCE=" VIP "), True),
        (CrmField("SOURCE", "!=", "VIP"), "", client(SOURCE="web"), True),
        (CrmField("SOURCE", "=", "VIP"), "", client(), False),  # no such field
        (CrmField("SOURCE", "~", "VIP"), "", client(SOURCE="VIP"), False),  # unknown operator
        (CrmField("SOURCE", "=", "VIP"), "", None, False),  # unknown caller
    ],
)
def test_conditions(condition: Condition, caller: str, who: CrmClient | None, expected: bool) -> None:
    assert holds(condition, PLAN, caller, who, T0) is expected


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        (datetime(2026, 3, 10, 13, 30, tzinfo=UTC), True),  # Tuesday 23:30 in Vladivostok: open until midnight
        (datetime(2026, 3, 10, 9, 59, tzinfo=UTC), False),  # Tuesday 19:59
        (datetime(2026, 3, 11, 0, 0, tzinfo=UTC), True),  # Wednesday 10:00
        (datetime(2026, 3, 11, 2, 30, tzinfo=UTC), False),  # Wednesday 12:30, the lunch break
        (datetime(2026, 3, 11, 3, 0, tzinfo=UTC), True),  # Wednesday 13:00
        (datetime(2026, 3, 17, 11, 0, tzinfo=UTC), False),  # a holiday Tuesday, 21:00
        (datetime(2026, 3, 18, 0, 0, tzinfo=UTC), False),  # a Wednesday closed by an override
        (datetime(2026, 3, 12, 0, 30, tzinfo=UTC), True),  # a Thursday opened by an override, 10:30
        (datetime(2026, 3, 12, 1, 0, tzinfo=UTC), False),  # that Thursday, 11:00
    ],
)
def test_schedule_hours_overrides_holidays_and_midnight(when: datetime, is_open: bool) -> None:
    late = Schedule(
        "late",
        "Asia/Vladivostok",
        weekly={2: ((time(20), time(0)),), 3: ((time(9), time(12)), (time(13), time(17)))},
        holidays=frozenset({date(2026, 3, 17)}),
        overrides={date(2026, 3, 18): (), date(2026, 3, 12): ((time(10), time(11)),)},
    )
    assert late.is_open(when) is is_open


def line(*rules: Rule, fallback: Action | None = None) -> Line:
    return Line("1", rules=rules, fallback=fallback or Hangup())


def test_needs_crm_follows_rules_fallback_queues_and_menus() -> None:
    menus = {
        "top": IvrMenu("top", "s", (("1", ToIvr("sub")), ("2", ToIvr("top")), ("3", ToIvr("nope")))),
        "sub": IvrMenu("sub", "s", (("1", ToQueue("vip")),)),
        "loop": IvrMenu("loop", "s", (("1", ToIvr("loop")),), on_fail=ToQueue("plain")),
    }
    queues = {
        "vip": QueueGroup("vip", ("1001",), final=ToResponsible()),
        "plain": QueueGroup("plain", ("1001",), final=ToQueue("plain")),
    }
    plan = Plan(lines={}, queues=queues, menus=menus, employees=STAFF)
    assert needs_crm(plan, line(Rule(KnownClient(), ToEmployee("1001"))))
    assert needs_crm(plan, line(Rule(CrmField("X", "=", "1"), Hangup())))
    assert needs_crm(plan, line(fallback=ToResponsible(supervisor=False)))
    assert needs_crm(plan, line(Rule(Always(), ToIvr("top"))))  # top -> sub -> queue vip -> responsible
    assert not needs_crm(plan, line(Rule(Always(), ToIvr("loop"))))
    assert not needs_crm(plan, line(Rule(Always(), ToQueue("nope")), Rule(Always(), HoldUntilFree("vip"))))
    assert not needs_crm(plan, line(Rule(InHours("office"), ToEmployee("1001"))))
