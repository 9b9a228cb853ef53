"""Final actions and forwards: to an external number, to an employee, hold until free."""

from __future__ import annotations

from dataclasses import replace

from bridge.domain.commands import (
    AnswerCaller,
    CancelLeg,
    ConnectLeg,
    CrmFinish,
    CrmHide,
    CrmShow,
    HangupCaller,
    RingAgent,
    RingNumber,
    StartMusic,
    StopMusic,
)
from bridge.domain.events import (
    AvailabilityChanged,
    LegAnswered,
    LegEnded,
    LegOutcome,
    TimerFired,
)
from bridge.domain.scheme import (
    Always,
    Availability,
    Hangup,
    HoldUntilFree,
    Rule,
    ToEmployee,
    ToNumber,
    ToQueue,
)
from bridge.domain.state import State, Talk, Walk, WalkKind
from tests.domain.builders import (
    CALLER,
    START,
    Driver,
    at,
    crm,
    leg,
    plan,
    play,
    queue,
    register,
    route,
    started,
)

A = Availability
VM_TEXT = f"A call from {CALLER} to line Sales left a voicemail."


def test_forward_to_an_external_number_rings_it_without_a_card_and_finishes_for_the_owner() -> None:
    q = queue("q", "1001", rings_per_member=1, final=ToNumber("74950000000", rings=2), missed_owner="1003")
    d = Driver(route(ToQueue("q"), queues=(q,), default_ext="1004", record=False))
    d(started())
    assert d(TimerFired(), 5) == [
        CancelLeg("c-leg1", unless_answered=True),
        RingNumber("c-leg2", "74950000000", 10.0),
        CrmHide("k.1", (1,)),
    ]
    assert d(LegAnswered("c-leg2"), 7) == [StopMusic(), ConnectLeg("c-leg2")]
    assert d.call.talk == Talk("k.1", "c-leg2", "", 0, at(7))
    assert d(LegEnded("c-leg2", LegOutcome.HANGUP), 19) == [HangupCaller(), CrmFinish("k.1", 3, 12, "200")]
    assert d.call.handled_by == ""  # nobody of ours talked


def test_a_forward_to_a_number_that_does_not_answer_passes_the_call_on() -> None:
    d = Driver(plan(Rule(Always(), ToNumber("74950000000", rings=1)), fallback=Hangup(), default_ext="1004"))
    d(started())
    assert d(LegEnded("c-leg1", LegOutcome.CONGESTION), 3) == [HangupCaller(), CrmFinish("k.1", 4, 0, "304")]


def test_forward_to_an_employee_without_a_registered_owner_registers_for_them() -> None:
    d = Driver(route(ToQueue("q"), queues=(queue("q", "1001", rings_per_member=1, final=ToEmployee("1002")),)))
    assert d(started()) == [
        AnswerCaller(),
        StartMusic(),
        RingAgent("c-leg1", "1001", 5.0),
        register(1),
        CrmShow("k.1", (1,)),
    ]
    assert d(TimerFired(), 5) == [
        CancelLeg("c-leg1", unless_answered=True),
        RingAgent("c-leg2", "1002", 20.0),
        CrmHide("k.1", (1,)),
        CrmShow("k.1", (2,)),
    ]
    # nobody answers: the missed call belongs to whoever it was registered for
    assert d(TimerFired(), 25)[-1] == CrmFinish("k.1", 1, 0, "304")


def test_hold_until_free_offers_the_call_to_a_member_who_becomes_free_and_holds_again_if_they_do_not_answer() -> None:
    q = queue("q", "1001", "1002", rings_per_member=2)
    the_plan = route(HoldUntilFree("q", max_wait=60.0), queues=(q,), default_ext="1005", record=False)
    hold = Walk(WalkKind.HOLD, queue="q", ring_seconds=10.0, hold_until=at(60))
    play(
        the_plan,
        [
            (
                0,
                started(e1001=A.BUSY, e1002=A.BUSY),
                [AnswerCaller(), register(5), StartMusic()],
                {
                    **START,
                    "state": State.HOLDING,
                    "availability": {"1001": A.BUSY, "1002": A.BUSY},
                    "rule_index": 1,
                    "hops": 1,
                    "last_queue": "q",
                    "walk": hold,
                    "crm_legs": (crm(1, 5),),
                    "music": True,
                },
            ),
            (
                5,
                AvailabilityChanged("1003", A.AVAILABLE),
                [],
                {"availability": {"1001": A.BUSY, "1002": A.BUSY, "1003": A.AVAILABLE}},
            ),
            (
                10,
                AvailabilityChanged("1001", A.AVAILABLE),
                [RingAgent("c-leg1", "1001", 10.0), CrmShow("k.1", (1,))],
                {
                    "state": State.RINGING,
                    "availability": {"1001": A.AVAILABLE, "1002": A.BUSY, "1003": A.AVAILABLE},
                    "walk": replace(hold, offered=frozenset({"1001"})),
                    "ringing": (leg(1, "1001", 10),),
                    "crm_legs": (crm(1, 5, shown=(1,)),),
                    "timer": at(20),
                    "serial": 1,
                },
            ),
            (
                20,
                TimerFired(),
                [CancelLeg("c-leg1", unless_answered=True), CrmHide("k.1", (1,))],
                {
                    "state": State.HOLDING,
                    "ringing": (),
                    "released": (leg(1, "1001", 10),),
                    "grace": ("c-leg1",),
                    "crm_legs": (crm(1, 5),),
                    "timer": None,
                },
            ),
            (
                30,
                AvailabilityChanged("1002", A.AVAILABLE),
                [RingAgent("c-leg2", "1002", 10.0), CrmShow("k.1", (2,))],
                {
                    "state": State.RINGING,
                    "availability": {"1001": A.AVAILABLE, "1002": A.AVAILABLE, "1003": A.AVAILABLE},
                    "walk": replace(hold, offered=frozenset({"1001", "1002"})),
                    "ringing": (leg(2, "1002", 30),),
                    "crm_legs": (crm(1, 5, shown=(2,)),),
                    "timer": at(40),
                    "serial": 2,
                },
            ),
            (
                32,
                AvailabilityChanged("1001", A.AVAILABLE),
                [],
                {"walk": replace(hold, offered=frozenset({"1002"}))},
            ),
            (
                35,
                LegEnded("c-leg2", LegOutcome.REJECTED),
                [RingAgent("c-leg3", "1001", 10.0), CrmHide("k.1", (2,)), CrmShow("k.1", (1,))],
                {
                    "walk": replace(hold, offered=frozenset({"1001", "1002"})),
                    "ringing": (leg(3, "1001", 35),),
                    "crm_legs": (crm(1, 5, shown=(1,)),),
                    "timer": at(45),
                    "serial": 3,
                },
            ),
            (
                42,
                LegAnswered("c-leg3"),
                [StopMusic(), ConnectLeg("c-leg3")],
                {
                    "state": State.TALKING,
                    "walk": None,
                    "ringing": (),
                    "talk": Talk("k.1", "c-leg3", "1001", 1, at(42)),
                    "music": False,
                    "timer": None,
                },
            ),
        ],
    )


def test_hold_until_free_hangs_up_after_its_maximum_wait_even_while_offering() -> None:
    q = queue("q", "1001", rings_per_member=4)
    d = Driver(route(HoldUntilFree("q", max_wait=30.0), queues=(q,), default_ext="1005"))
    assert d(started()) == [
        AnswerCaller(),
        register(5),
        StartMusic(),
        RingAgent("c-leg1", "1001", 20.0),
        CrmShow("k.1", (1,)),
    ]
    assert d.call.deadline == at(20)
    d(TimerFired(), 20)
    assert d.call.state is State.HOLDING and d.call.deadline == at(30)
    d(AvailabilityChanged("1001", A.BUSY), 25)
    d(AvailabilityChanged("1001", A.AVAILABLE), 26)
    assert d.call.state is State.RINGING and d.call.deadline == at(30)
    assert d(TimerFired(), 30) == [
        CancelLeg("c-leg2"),
        HangupCaller(),
        CrmHide("k.1", (1,)),
        CrmFinish("k.1", 5, 0, "304"),
    ]


def test_hold_without_a_limit_waits_and_a_queue_that_does_not_exist_passes_the_call_on() -> None:
    q = queue("q", "1001", rings_per_member=0)
    d = Driver(route(HoldUntilFree("q"), queues=(q,), default_ext="1005"))
    d(started(e1001=A.ABSENT))
    assert d.call.state is State.HOLDING and d.call.deadline is None
    assert d(AvailabilityChanged("1001", A.AVAILABLE), 99)[0] == RingAgent("c-leg1", "1001", 20.0)
    d = Driver(plan(Rule(Always(), HoldUntilFree("nope")), Rule(Always(), ToQueue("nope")), default_ext="1005"))
    assert d(started()) == [AnswerCaller(), register(5), HangupCaller(), CrmFinish("k.1", 5, 0, "304")]
