"""The rule chain: working hours, caller prefix, known client, CRM fields, the responsible manager and their
supervisor, the bounded CRM lookup, the fallback; and a call for a line nobody configured."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time

import pytest

from bridge.domain.commands import (
    AnswerCaller,
    CallType,
    CancelLeg,
    ConnectLeg,
    CrmAttachRecord,
    CrmFinish,
    CrmHide,
    CrmShow,
    HangupCaller,
    LookupCrm,
    PlayPrompt,
    RingAgent,
    StartMusic,
    StartRecording,
    StopMusic,
)
from bridge.domain.events import (
    CallerHungUp,
    CallStarted,
    CrmClient,
    CrmLookedUp,
    LegAnswered,
    LegEnded,
    LegOutcome,
    RecordingReady,
    TimerFired,
)
from bridge.domain.schedule import Schedule
from bridge.domain.scheme import (
    Always,
    Availability,
    CallerPrefix,
    CrmField,
    InHours,
    KnownClient,
    Plan,
    Rule,
    ToEmployee,
    ToQueue,
    ToResponsible,
    ToVoicemail,
)
from bridge.domain.state import Stage, State, Talk, Walk, WalkKind
from tests.domain.builders import (
    CALLER,
    LINE,
    STAFF,
    START,
    Driver,
    at,
    crm,
    leg,
    plan,
    play,
    queue,
    register,
    started,
)

OFFICE = Schedule(
    "office",
    "Europe/Moscow",
    weekly={day: ((time(9), time(18)),) for day in range(1, 6)},
    holidays=frozenset({date(2026, 3, 9)}),
    overrides={date(2026, 3, 11): ((time(9), time(12)),)},
)
STAFF_WITH_HEAD = {**STAFF, "1002": replace(STAFF["1002"], supervisor_ext="1005")}


def hours_plan() -> Plan:
    return replace(
        plan(
            Rule(InHours("office"), ToQueue("q")),
            fallback=ToVoicemail("1005"),
            queues=(queue("q", "1001"),),
            default_ext="1004",
        ),
        schedules={"office": OFFICE},
    )


@pytest.mark.parametrize(
    ("when", "first"),
    [
        (datetime(2026, 3, 10, 10, 0, tzinfo=UTC), RingAgent("c-leg1", "1001", 15.0)),  # Tue 13:00 MSK
        (datetime(2026, 3, 10, 5, 59, tzinfo=UTC), PlayPrompt("c-prompt1", "sound:vm-intro")),  # 08:59
        (datetime(2026, 3, 10, 15, 0, tzinfo=UTC), PlayPrompt("c-prompt1", "sound:vm-intro")),  # 18:00
        (datetime(2026, 3, 9, 10, 0, tzinfo=UTC), PlayPrompt("c-prompt1", "sound:vm-intro")),  # holiday
        (datetime(2026, 3, 11, 9, 0, tzinfo=UTC), PlayPrompt("c-prompt1", "sound:vm-intro")),  # short day
        (datetime(2026, 3, 11, 8, 59, tzinfo=UTC), RingAgent("c-leg1", "1001", 15.0)),  # 11:59 that day
        (datetime(2026, 3, 14, 10, 0, tzinfo=UTC), PlayPrompt("c-prompt1", "sound:vm-intro")),  # Saturday
    ],
)
def test_working_hours_in_the_schedules_timezone_with_holidays_and_overrides(when: datetime, first: object) -> None:
    d = Driver(hours_plan(), start=when)
    commands = d(started())
    assert first in commands


def test_responsible_manager_then_supervisor_then_the_next_rule() -> None:
    the_plan = plan(
        Rule(KnownClient(), ToResponsible(supervisor=True, rings=2)),
        Rule(Always(), ToQueue("q")),
        queues=(queue("q", "1001"),),
        staff=STAFF_WITH_HEAD,
        default_ext="1004",
    )
    client = CrmClient("CONTACT", 42, responsible_user_id=2, fields={})
    targets = Walk(WalkKind.TARGETS, order=("1002", "1005"), position=0, ring_seconds=10.0)
    qwalk = Walk(WalkKind.QUEUE, queue="q", order=("1001",), position=0, ring_seconds=15.0)
    talk = Talk("k.1", "c-leg3", "1001", 1, at(25))
    play(
        the_plan,
        [
            (
                0,
                started(),
                [AnswerCaller(), LookupCrm(CALLER), StartMusic()],
                {**START, "state": State.LOOKUP, "music": True, "timer": at(2)},
            ),
            (
                1,
                CrmLookedUp(client),
                [
                    register(2, crm_entity_type="CONTACT", crm_entity_id=42),
                    RingAgent("c-leg1", "1002", 10.0),
                    CrmShow("k.1", (2,)),
                ],
                {
                    "client": client,
                    "state": State.RINGING,
                    "rule_index": 1,
                    "hops": 1,
                    "walk": targets,
                    "ringing": (leg(1, "1002", 1),),
                    "crm_legs": (crm(1, 2, shown=(2,)),),
                    "timer": at(11),
                    "serial": 1,
                },
            ),
            (
                11,
                TimerFired(),
                [
                    CancelLeg("c-leg1", unless_answered=True),
                    RingAgent("c-leg2", "1005", 10.0),
                    CrmHide("k.1", (2,)),
                    CrmShow("k.1", (5,)),
                ],
                {
                    "walk": replace(targets, position=1),
                    "ringing": (leg(2, "1005", 11),),
                    "released": (leg(1, "1002", 1),),
                    "grace": ("c-leg1",),
                    "crm_legs": (crm(1, 2, shown=(5,)),),
                    "timer": at(21),
                    "serial": 2,
                },
            ),
            (
                21,
                LegEnded("c-leg2", LegOutcome.NO_ANSWER),
                [RingAgent("c-leg3", "1001", 15.0), CrmHide("k.1", (5,)), CrmShow("k.1", (1,))],
                {
                    "rule_index": 2,
                    "hops": 2,
                    "last_queue": "q",
                    "walk": qwalk,
                    "ringing": (leg(3, "1001", 21),),
                    "crm_legs": (crm(1, 2, shown=(1,)),),
                    "timer": at(36),
                    "serial": 3,
                },
            ),
            (
                25,
                LegAnswered("c-leg3"),
                [StopMusic(), ConnectLeg("c-leg3"), StartRecording("c-rec4")],
                {
                    "state": State.TALKING,
                    "walk": None,
                    "ringing": (),
                    "talk": talk,
                    "crm_legs": (crm(1, 2, shown=(1,), recording="c-rec4"),),
                    "music": False,
                    "timer": None,
                    "serial": 4,
                },
            ),
            (
                65.4,
                CallerHungUp(),
                [CancelLeg("c-leg3"), CrmFinish("k.1", 1, 40, "200")],
                {
                    "state": State.WRAP_UP,
                    "talk": None,
                    "talks": (replace(talk, ended_at=at(65.4)),),
                    "crm_legs": (crm(1, 2, finished=True, recording="c-rec4"),),
                    "timer": at(95.4),
                    "ended_at": at(65.4),
                },
            ),
            (
                70,
                RecordingReady("c-rec4"),
                [CrmAttachRecord("k.1", "c-rec4")],
                {
                    "state": State.DONE,
                    "crm_legs": (crm(1, 2, finished=True, recording="c-rec4", attached=True),),
                    "timer": None,
                },
            ),
        ],
    )


def test_a_lookup_that_does_not_answer_in_time_routes_the_caller_as_unknown() -> None:
    the_plan = plan(
        Rule(KnownClient(), ToResponsible()),
        Rule(Always(), ToQueue("q")),
        queues=(queue("q", "1001"),),
        default_ext="1004",
    )
    d = Driver(the_plan)
    d(started())
    assert d(TimerFired(), 1.9) == [] and d.call.ignored == "no deadline has passed"
    assert d(TimerFired(), 2) == [register(4), RingAgent("c-leg1", "1001", 15.0), CrmShow("k.1", (1,))]
    assert d.call.client is None and d.call.rule_index == 2
    assert d(CrmLookedUp(CrmClient("CONTACT", 1, 2)), 3) == []
    assert d.call.ignored == "CrmLookedUp has no meaning in state ringing"


CLIENT_BIG_DEAL = CrmClient("CONTACT", 7, responsible_user_id=3, fields={"OPPORTUNITY": "150000.00"})
CLIENT_SMALL_DEAL = CrmClient("CONTACT", 7, responsible_user_id=3, fields={"OPPORTUNITY": "5000"})


@pytest.mark.parametrize(
    ("caller", "client", "rung"),
    [
        ("78125550000", None, "1004"),  # St Petersburg prefix
        ("+7 (812) 555-00-00", None, "1004"),  # digits only count
        ("79161234567", CLIENT_BIG_DEAL, "1005"),  # OPPORTUNITY > 100000: the head of sales
        ("79161234567", CLIENT_SMALL_DEAL, "1003"),  # known: the responsible manager
        ("79161234567", None, "1001"),  # unknown: the queue
    ],
)
def test_conditional_rules_by_prefix_deal_amount_and_known_client(
    caller: str, client: CrmClient | None, rung: str
) -> None:
    the_plan = plan(
        Rule(CallerPrefix(("7812",)), ToEmployee("1004")),
        Rule(CrmField("OPPORTUNITY", ">", "100000"), ToEmployee("1005")),
        Rule(KnownClient(), ToResponsible(supervisor=False)),
        Rule(KnownClient(known=False), ToQueue("q")),
        queues=(queue("q", "1001"),),
        default_ext="1004",
    )
    d = Driver(the_plan)
    d(CallStarted(LINE, caller, crm_key="k"))
    commands = d(CrmLookedUp(client), 1)
    assert [c.ext for c in commands if isinstance(c, RingAgent)] == [rung]


def test_a_responsible_manager_who_cannot_take_the_call_passes_it_to_the_next_rule() -> None:
    the_plan = plan(
        Rule(Always(), ToResponsible()),
        fallback=ToEmployee("1001"),
        staff=STAFF_WITH_HEAD,
        default_ext="1004",
    )
    # no responsible manager known, or not an employee of the plan: the fallback rings at once
    for client in (CrmClient("LEAD", 1), CrmClient("LEAD", 1, responsible_user_id=77)):
        d = Driver(the_plan)
        d(started())
        rung = [c.ext for c in d(CrmLookedUp(client), 1) if isinstance(c, RingAgent)]
        assert rung == ["1001"]
    # the responsible manager is absent and the supervisor busy without a busy rule: the fallback
    d = Driver(the_plan)
    d(started(e1002=Availability.ABSENT, e1005=Availability.BUSY))
    commands = d(CrmLookedUp(CrmClient("CONTACT", 9, responsible_user_id=2)), 1)
    assert commands == [
        register(2, crm_entity_type="CONTACT", crm_entity_id=9),
        RingAgent("c-leg1", "1001", 20.0),
        CrmShow("k.1", (1,)),
    ]
    assert d.call.walk is not None and d.call.walk.stage is Stage.DEVICE and d.call.rule_index == 2


def test_the_fallback_then_hang_up_when_no_rule_is_left() -> None:
    d = Driver(plan(Rule(CallerPrefix(("7812",)), ToEmployee("1004")), fallback=ToEmployee("1001"), default_ext="1005"))
    d(started(e1001=Availability.UNREGISTERED))
    assert d.call.state is State.DONE
    assert d.log[0][2] == [AnswerCaller(), register(5), HangupCaller(), CrmFinish("k.1", 5, 0, "304")]


def test_a_call_for_an_unconfigured_line_is_refused_and_nothing_is_mirrored() -> None:
    d = Driver(plan())
    assert d(CallStarted("70000000000", CALLER)) == [HangupCaller("unallocated")]
    assert d.call.state is State.DONE and d.call.warning == "line '70000000000' is not configured"
    assert d(CallerHungUp(), 1) == [] and d.call.deadline is None


def test_a_callback_call_is_registered_as_type_4() -> None:
    d = Driver(plan(Rule(Always(), ToQueue("q")), queues=(queue("q", "1001"),), default_ext="1005"))
    commands = d(CallStarted(LINE, CALLER, crm_key="k", call_type=CallType.CALLBACK))
    assert commands[1] == register(5, call_type=CallType.CALLBACK)
    assert d.call.call_type is CallType.CALLBACK


def test_a_client_called_back_goes_to_the_lines_callback_queue_not_its_rules() -> None:
    the_plan = plan(
        Rule(Always(), ToQueue("q")),
        queues=(queue("q", "1001"), queue("callbacks", "1002")),
        default_ext="1005",
        callback_queue="callbacks",
    )
    d = Driver(the_plan)
    commands = d(CallStarted(LINE, CALLER, crm_key="k", call_type=CallType.CALLBACK))
    assert commands[1] == register(5, call_type=CallType.CALLBACK)
    assert [leg.ext for leg in d.call.ringing] == ["1002"]
    inbound = Driver(the_plan)
    inbound(CallStarted(LINE, CALLER, crm_key="k"))
    assert [leg.ext for leg in inbound.call.ringing] == ["1001"]  # an ordinary caller follows the rules
