"""Final actions (voicemail, forward to an employee or a number, hold until free, hang up) and the employees'
own rules (busy, unavailable, no answer -> mobile)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bridge.domain.commands import (
    AnswerCaller,
    CancelLeg,
    ConnectLeg,
    CrmAttachRecord,
    CrmFinish,
    CrmHide,
    CrmNotify,
    CrmShow,
    HangupCaller,
    PlayPrompt,
    RecordVoicemail,
    RingAgent,
    RingNumber,
    StartMusic,
    StopMusic,
)
from bridge.domain.events import (
    AvailabilityChanged,
    CallerHungUp,
    LegAnswered,
    LegEnded,
    LegOutcome,
    PromptFinished,
    RecordingReady,
    TimerFired,
)
from bridge.domain.scheme import (
    Always,
    Availability,
    Employee,
    Hangup,
    HoldUntilFree,
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


def test_voicemail_as_a_queue_final_action_records_a_message_for_the_missed_call_owner() -> None:
    q = queue("q", "1001", rings_per_member=1, final=ToVoicemail(), missed_owner="1003")
    the_plan = route(ToQueue("q"), queues=(q,), default_ext="1004", missed_notify=True)
    play(
        the_plan,
        [
            (
                0,
                started(),
                [AnswerCaller(), register(4), StartMusic(), RingAgent("c-leg1", "1001", 5.0), CrmShow("k.1", (1,))],
                {
                    **START,
                    "state": State.RINGING,
                    "rule_index": 1,
                    "hops": 1,
                    "last_queue": "q",
                    "walk": Walk(WalkKind.QUEUE, queue="q", order=("1001",), position=0, ring_seconds=5.0),
                    "ringing": (leg(1, "1001"),),
                    "crm_legs": (crm(1, 4, shown=(1,)),),
                    "music": True,
                    "timer": at(5),
                    "serial": 1,
                },
            ),
            (
                5,
                TimerFired(),
                [CancelLeg("c-leg1"), StopMusic(), PlayPrompt("c-prompt2", "sound:vm-intro"), CrmHide("k.1", (1,))],
                {
                    "state": State.VOICEMAIL_PROMPT,
                    "hops": 2,
                    "walk": None,
                    "ringing": (),
                    "released": (leg(1, "1001"),),
                    "grace": ("c-leg1",),
                    "crm_legs": (crm(1, 4),),
                    "music": False,
                    "prompt": "c-prompt2",
                    "voicemail_user": 3,
                    "timer": None,
                    "serial": 2,
                },
            ),
            (6, LegEnded("c-leg1", LegOutcome.NO_ANSWER), [], {"released": ()}),
            (7, PromptFinished("c-prompt9"), [], {"ignored": "prompt c-prompt9 is not playing", "grace": ()}),
            (
                8,
                PromptFinished("c-prompt2"),
                [RecordVoicemail("k.1-voicemail", 120.0)],
                {
                    "state": State.VOICEMAIL_RECORDING,
                    "prompt": "",
                    "crm_legs": (crm(1, 4, recording="k.1-voicemail"),),
                    "timer": at(128),
                },
            ),
            (
                30,
                CallerHungUp(),
                [CrmFinish("k.1", 3, 0, "304"), CrmNotify(3, VM_TEXT)],
                {
                    "state": State.WRAP_UP,
                    "crm_legs": (crm(1, 4, finished=True, recording="k.1-voicemail"),),
                    "timer": at(60),
                    "ended_at": at(30),
                },
            ),
            (
                31,
                RecordingReady("k.1-voicemail"),
                [CrmAttachRecord("k.1", "k.1-voicemail")],
                {
                    "state": State.DONE,
                    "crm_legs": (crm(1, 4, finished=True, recording="k.1-voicemail", attached=True),),
                    "timer": None,
                },
            ),
        ],
    )


def _recording_voicemail() -> Driver:
    d = Driver(route(ToVoicemail("1005"), default_ext="1004"))
    d(started())
    d(PromptFinished("c-prompt1"), 2)
    assert d.call.state is State.VOICEMAIL_RECORDING and d.call.voicemail_user == 5
    return d


def test_voicemail_ends_at_its_maximum_length_and_attaches_once_stored() -> None:
    d = _recording_voicemail()
    assert d(TimerFired(), 121) == [] and d.call.ignored
    assert d(TimerFired(), 122) == [HangupCaller(), CrmFinish("k.1", 5, 0, "304")]
    assert d.call.state is State.WRAP_UP
    assert d(RecordingReady("other"), 123) == [] and d.call.ignored == "no call leg waits for recording other"
    assert d(RecordingReady("k.1-voicemail"), 124) == [CrmAttachRecord("k.1", "k.1-voicemail")]
    assert d.call.state is State.DONE


def test_voicemail_stored_by_the_pbx_hangs_up_and_attaches_right_after_the_finish() -> None:
    d = _recording_voicemail()
    assert d(RecordingReady("nope"), 50) == [] and d.call.state is State.VOICEMAIL_RECORDING
    assert d(RecordingReady("k.1-voicemail"), 60) == [
        HangupCaller(),
        CrmFinish("k.1", 5, 0, "304"),
        CrmAttachRecord("k.1", "k.1-voicemail"),
    ]
    assert d.call.state is State.DONE


def test_a_recording_that_never_arrives_is_given_up_after_the_wait() -> None:
    d = _recording_voicemail()
    d(CallerHungUp(), 10)
    assert d(TimerFired(), 40) == []
    assert d.call.state is State.DONE and d.call.warning == "recordings not stored in time: k.1-voicemail"


def test_caller_hanging_up_during_the_voicemail_intro_is_a_missed_call_without_a_message() -> None:
    d = Driver(route(ToVoicemail("1005"), default_ext="1004"))
    assert d(started()) == [AnswerCaller(), register(4), PlayPrompt("c-prompt1", "sound:vm-intro")]
    assert d(CallerHungUp(), 1) == [CrmFinish("k.1", 5, 0, "304")]
    assert d.call.state is State.DONE


def test_voicemail_nobody_could_own_passes_the_call_on() -> None:
    d = Driver(plan(Rule(Always(), ToVoicemail()), fallback=ToEmployee("1002")))
    assert d(started()) == [
        AnswerCaller(),
        StartMusic(),
        RingAgent("c-leg1", "1002", 20.0),
        register(2),
        CrmShow("k.1", (2,)),
    ]


def test_forward_to_an_external_number_rings_it_without_a_card_and_finishes_for_the_owner() -> None:
    q = queue("q", "1001", rings_per_member=1, final=ToNumber("74950000000", rings=2), missed_owner="1003")
    d = Driver(route(ToQueue("q"), queues=(q,), default_ext="1004", record=False))
    d(started())
    assert d(TimerFired(), 5) == [CancelLeg("c-leg1"), RingNumber("c-leg2", "74950000000", 10.0), CrmHide("k.1", (1,))]
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
        CancelLeg("c-leg1"),
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
                [CancelLeg("c-leg1"), CrmHide("k.1", (1,))],
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


# --- the employees' own rules ----------------------------------------------------------------------


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
        CancelLeg("c-leg2"),
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
                [CancelLeg("c-leg1"), RingNumber("c-leg2", "79160001003", 15.0)],
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
