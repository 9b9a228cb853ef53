"""The employees' own rules when they are the target: busy -> voicemail or a number, unavailable -> mobile,
no answer -> mobile; absent or failing targets are skipped."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bridge.domain.call import note_availability, only_records_availability, step
from bridge.domain.commands import (
    AnswerCaller,
    CancelLeg,
    ConnectLeg,
    CrmFinish,
    CrmHide,
    CrmShow,
    HangupCaller,
    PlayPrompt,
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
    Employee,
    Rule,
    ToEmployee,
    ToNumber,
    ToQueue,
    ToVoicemail,
)
from bridge.domain.state import Stage, State, Talk, Walk, WalkKind
from tests.domain.builders import (
    CALLER,
    STAFF,
    START,
    Driver,
    at,
    crm,
    employees,
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


def staff(**rules: Any) -> dict[str, Employee]:
    return {**STAFF, **employees("1003", e1003=rules)}


def test_busy_rule_voicemail_takes_a_message_for_the_busy_employee() -> None:
    d = Driver(route(ToEmployee("1003"), staff=staff(on_busy=ToVoicemail()), default_ext="1005"))
    assert d(started(e1003=A.BUSY)) == [AnswerCaller(), register(5), PlayPrompt("c-prompt1", "sound:vm-intro")]
    assert d.call.voicemail_user == 3


def test_busy_rule_number_forwards_and_the_next_rule_follows_when_it_does_not_answer() -> None:
    the_plan = plan(
        Rule(Always(), ToEmployee("1003")),
        Rule(Always(), ToEmployee("1001")),
        staff=staff(on_busy=ToNumber("74950001122", rings=2)),
        default_ext="1005",
    )
    d = Driver(the_plan)
    d(started())
    # the device said free, but the phone is busy: the busy rule applies
    assert d(LegEnded("c-leg1", LegOutcome.BUSY), 2) == [
        RingNumber("c-leg2", "74950001122", 10.0),
        CrmHide("k.1", (3,)),
    ]
    assert d.call.walk is not None and d.call.walk.stage is Stage.FORWARD
    assert d(TimerFired(), 12) == [
        CancelLeg("c-leg2", unless_answered=True),
        RingAgent("c-leg3", "1001", 20.0),
        CrmShow("k.1", (1,)),
    ]


def test_unavailable_rule_rings_the_mobile_with_the_card() -> None:
    d = Driver(route(ToEmployee("1003"), staff=staff(unavailable_to_mobile=True), default_ext="1005"))
    assert d(started(e1003=A.UNREGISTERED)) == [
        AnswerCaller(),
        register(5),
        StartMusic(),
        RingNumber("c-leg1", "79160001003", 20.0),
        CrmShow("k.1", (3,)),
    ]
    assert d(LegAnswered("c-leg1"), 4)[:2] == [StopMusic(), ConnectLeg("c-leg1")]
    assert d.call.talk == Talk("k.1", "c-leg1", "1003", 3, at(4))


def test_no_answer_forwards_to_the_mobile_without_the_card_flickering() -> None:
    the_plan = plan(
        Rule(Always(), ToEmployee("1003", rings=3)),
        fallback=ToQueue("q"),
        queues=(queue("q", "1003", "1001"),),
        staff=staff(no_answer_to_mobile=True, unavailable_to_mobile=True),
        default_ext="1005",
        record=False,
    )
    targets = Walk(WalkKind.TARGETS, order=("1003",), position=0, ring_seconds=15.0)
    mobile = leg(2, "1003", 15, number="79160001003", user=3)
    play(
        the_plan,
        [
            (
                0,
                started(),
                [AnswerCaller(), register(5), StartMusic(), RingAgent("c-leg1", "1003", 15.0), CrmShow("k.1", (3,))],
                {
                    **START,
                    "state": State.RINGING,
                    "rule_index": 1,
                    "hops": 1,
                    "walk": targets,
                    "ringing": (leg(1, "1003"),),
                    "crm_legs": (crm(1, 5, shown=(3,)),),
                    "music": True,
                    "timer": at(15),
                    "serial": 1,
                },
            ),
            (
                15,
                TimerFired(),
                [CancelLeg("c-leg1", unless_answered=True), RingNumber("c-leg2", "79160001003", 15.0)],
                {
                    "walk": replace(targets, stage=Stage.MOBILE),
                    "ringing": (mobile,),
                    "released": (leg(1, "1003"),),
                    "grace": ("c-leg1",),
                    "timer": at(30),
                    "serial": 2,
                },
            ),
            # the desk phone goes offline: it does not matter for the mobile that rings now
            (20, AvailabilityChanged("1003", A.UNREGISTERED), [], {"availability": {"1003": A.UNREGISTERED}}),
            # the mobile does not answer either: the fallback queue, where the employee's own rules do not apply
            (
                21,
                LegEnded("c-leg2", LegOutcome.NO_ANSWER),
                [RingAgent("c-leg3", "1001", 15.0), CrmHide("k.1", (3,)), CrmShow("k.1", (1,))],
                {
                    "rule_index": 2,
                    "hops": 2,
                    "last_queue": "q",
                    "walk": Walk(WalkKind.QUEUE, queue="q", order=("1003", "1001"), position=1, ring_seconds=15.0),
                    "ringing": (leg(3, "1001", 21),),
                    "crm_legs": (crm(1, 5, shown=(1,)),),
                    "timer": at(36),
                    "serial": 3,
                },
            ),
        ],
    )


def test_an_employee_whose_phone_becomes_busy_while_ringing_gets_their_busy_rule() -> None:
    d = Driver(route(ToEmployee("1003"), staff=staff(on_busy=ToVoicemail("1005")), default_ext="1004"))
    d(started())
    assert d(AvailabilityChanged("1003", A.BUSY), 3) == [
        CancelLeg("c-leg1"),
        StopMusic(),
        PlayPrompt("c-prompt2", "sound:vm-intro"),
        CrmHide("k.1", (3,)),
    ]
    assert d.call.voicemail_user == 5


def test_a_target_whose_leg_fails_otherwise_or_who_is_absent_is_skipped() -> None:
    the_plan = plan(
        Rule(Always(), ToEmployee("1003")),
        fallback=ToEmployee("1001"),
        staff=staff(unavailable_to_mobile=True, no_answer_to_mobile=True),
        default_ext="1005",
    )
    d = Driver(the_plan)
    d(started())
    assert d(LegEnded("c-leg1", LegOutcome.UNAVAILABLE), 1) == [RingNumber("c-leg2", "79160001003", 20.0)]
    d = Driver(the_plan)
    d(started())
    assert d(LegEnded("c-leg1", LegOutcome.CONGESTION), 1) == [
        RingAgent("c-leg2", "1001", 20.0),
        CrmHide("k.1", (3,)),
        CrmShow("k.1", (1,)),
    ]
    d = Driver(the_plan)
    d(started())
    assert d(AvailabilityChanged("1003", A.NOT_CLOCKED_IN), 1)[0] == CancelLeg("c-leg1")
    assert d.call.ringing[0].ext == "1001"
    d = Driver(route(ToEmployee("9999"), default_ext="1005"))
    assert d(started()) == [AnswerCaller(), register(5), HangupCaller(), CrmFinish("k.1", 5, 0, "304")]


def test_a_device_change_is_only_recorded_once_the_call_talks_and_stepped_while_it_rings() -> None:
    """``note_availability``: the dispatcher's shortcut for the device news of every agent told to every call."""
    d = Driver(route(ToEmployee("1003"), default_ext="1005"))
    d(started())
    assert d.call.state is State.RINGING
    assert not only_records_availability(d.call, "1003", A.BUSY), "the walk acts on the agent it rings"
    assert only_records_availability(d.call, "1001", A.BUSY), "and on nobody else here"
    d(LegAnswered("c-leg1"), 4)
    assert d.call.state is State.TALKING and only_records_availability(d.call, "1003", A.BUSY)
    noted = note_availability(d.call, {"1001": A.BUSY})
    assert noted.availability["1001"] is A.BUSY
    assert (noted, []) == step(d.call, AvailabilityChanged("1001", A.BUSY), at(5))
