"""Answer, talk and end, and transfers: every conversation leg is its own CRM call; handled_by."""

from __future__ import annotations

from dataclasses import replace

from bridge.domain.commands import (
    AnswerCaller,
    CallType,
    CancelLeg,
    ConnectLeg,
    CrmAttachRecord,
    CrmFinish,
    CrmShow,
    HangupCaller,
    RingAgent,
    RingNumber,
    StartMusic,
    StartRecording,
    StopMusic,
)
from bridge.domain.events import (
    CallerHungUp,
    LegAnswered,
    LegEnded,
    LegOutcome,
    RecordingReady,
    TimerFired,
    Transferred,
)
from bridge.domain.scheme import (
    Plan,
    ToNumber,
    ToQueue,
)
from bridge.domain.state import Leg, State, Talk, Walk, WalkKind
from tests.domain.builders import (
    START,
    Driver,
    at,
    crm,
    leg,
    play,
    queue,
    register,
    route,
    started,
)


def one_queue(**kw: object) -> Plan:
    return route(ToQueue("q"), queues=(queue("q", "1001", "1002"),), default_ext="1005", **kw)


def test_the_agent_hangs_up_first_the_caller_is_hung_up_and_the_talk_time_counts_from_the_answer() -> None:
    d = Driver(one_queue())
    d(started())
    d(TimerFired(), 15)
    d(LegAnswered("c-leg2"), 21)
    assert d(LegEnded("c-leg2", LegOutcome.HANGUP), 32.6) == [HangupCaller(), CrmFinish("k.1", 2, 12, "200")]
    assert d.call.state is State.WRAP_UP and d.call.handled_by == "1002"
    assert d(LegEnded("c-leg1", LegOutcome.NO_ANSWER), 33) == []  # absorbed: the leg released at 15 s
    assert d(RecordingReady("c-rec3"), 34) == [CrmAttachRecord("k.1", "c-rec3")]
    assert d.call.state is State.DONE


def test_blind_then_attended_transfer_each_conversation_leg_is_its_own_crm_call() -> None:
    first = Talk("k.1", "c-leg1", "1001", 1, at(5))
    second = Talk("k.2", "x1", "1004", 4, at(70))
    third = Talk("k.3", "x2", "1002", 2, at(100))
    call = play(
        one_queue(),
        [
            (
                0,
                started(),
                [AnswerCaller(), register(5), StartMusic(), RingAgent("c-leg1", "1001", 15.0), CrmShow("k.1", (1,))],
                {
                    **START,
                    "state": State.RINGING,
                    "rule_index": 1,
                    "hops": 1,
                    "last_queue": "q",
                    "walk": Walk(WalkKind.QUEUE, queue="q", order=("1001", "1002"), position=0, ring_seconds=15.0),
                    "ringing": (leg(1, "1001"),),
                    "crm_legs": (crm(1, 5, shown=(1,)),),
                    "music": True,
                    "timer": at(15),
                    "serial": 1,
                },
            ),
            (
                5,
                LegAnswered("c-leg1"),
                [StopMusic(), ConnectLeg("c-leg1"), StartRecording("c-rec2")],
                {
                    "state": State.TALKING,
                    "walk": None,
                    "ringing": (),
                    "talk": first,
                    "crm_legs": (crm(1, 5, shown=(1,), recording="c-rec2"),),
                    "music": False,
                    "timer": None,
                    "serial": 2,
                },
            ),
            (
                65,
                Transferred("x1", ext="1004"),
                [
                    CrmFinish("k.1", 1, 60, "200"),
                    register(4, n=2, t=65, call_type=CallType.INCOMING_REDIRECTED),
                    CrmShow("k.2", (4,)),
                ],
                {
                    "state": State.RINGING,
                    "talk": None,
                    "talks": (replace(first, ended_at=at(65)),),
                    "released": (Leg("c-leg1", at(5), "1001", 1),),
                    "ringing": (Leg("x1", at(65), "1004", 4),),
                    "walk": Walk(WalkKind.TRANSFER, ring_seconds=30.0),
                    "crm_legs": (crm(1, 5, finished=True, recording="c-rec2"), crm(2, 4, shown=(4,))),
                    "timer": at(95),
                },
            ),
            (
                66,
                RecordingReady("c-rec2"),
                [CrmAttachRecord("k.1", "c-rec2")],
                {"crm_legs": (crm(1, 5, finished=True, recording="c-rec2", attached=True), crm(2, 4, shown=(4,)))},
            ),
            (66.5, LegEnded("c-leg1", LegOutcome.HANGUP), [], {"released": ()}),
            (
                70,
                LegAnswered("x1"),
                [ConnectLeg("x1"), StartRecording("c-rec3")],
                {
                    "state": State.TALKING,
                    "walk": None,
                    "ringing": (),
                    "talk": second,
                    "crm_legs": (
                        crm(1, 5, finished=True, recording="c-rec2", attached=True),
                        crm(2, 4, shown=(4,), recording="c-rec3"),
                    ),
                    "timer": None,
                    "serial": 3,
                },
            ),
            (
                100,
                Transferred("x2", ext="1002", attended=True),
                [
                    CrmFinish("k.2", 4, 30, "200"),
                    register(2, n=3, t=100, call_type=CallType.INCOMING_REDIRECTED),
                    StartRecording("c-rec4"),
                    CrmShow("k.3", (2,)),
                ],
                {
                    "talk": third,
                    "talks": (replace(first, ended_at=at(65)), replace(second, ended_at=at(100))),
                    "released": (Leg("x1", at(70), "1004", 4),),
                    "crm_legs": (
                        crm(1, 5, finished=True, recording="c-rec2", attached=True),
                        crm(2, 4, finished=True, recording="c-rec3"),
                        crm(3, 2, shown=(2,), recording="c-rec4"),
                    ),
                    "serial": 4,
                },
            ),
            (
                200,
                CallerHungUp(),
                [CancelLeg("x2"), CrmFinish("k.3", 2, 100, "200")],
                {
                    "state": State.WRAP_UP,
                    "talk": None,
                    "talks": (
                        replace(first, ended_at=at(65)),
                        replace(second, ended_at=at(100)),
                        replace(third, ended_at=at(200)),
                    ),
                    "crm_legs": (
                        crm(1, 5, finished=True, recording="c-rec2", attached=True),
                        crm(2, 4, finished=True, recording="c-rec3"),
                        crm(3, 2, finished=True, recording="c-rec4"),
                    ),
                    "timer": at(230),
                    "ended_at": at(200),
                },
            ),
            (
                201,
                RecordingReady("c-rec4"),
                [CrmAttachRecord("k.3", "c-rec4")],
                {
                    "crm_legs": (
                        crm(1, 5, finished=True, recording="c-rec2", attached=True),
                        crm(2, 4, finished=True, recording="c-rec3"),
                        crm(3, 2, finished=True, recording="c-rec4", attached=True),
                    ),
                },
            ),
            (
                202,
                RecordingReady("c-rec3"),
                [CrmAttachRecord("k.2", "c-rec3")],
                {
                    "state": State.DONE,
                    "crm_legs": (
                        crm(1, 5, finished=True, recording="c-rec2", attached=True),
                        crm(2, 4, finished=True, recording="c-rec3", attached=True),
                        crm(3, 2, finished=True, recording="c-rec4", attached=True),
                    ),
                    "timer": None,
                },
            ),
        ],
    )
    assert call.handled_by == "1002"  # 100 s, against 60 s for 1001 and 30 s for 1004


def test_a_blind_transfer_nobody_answers_ends_missed_for_its_target() -> None:
    d = Driver(one_queue(record=False))
    d(started())
    d(LegAnswered("c-leg1"), 5)
    d(Transferred("x1", ext="1004"), 20)
    assert d(TimerFired(), 50) == [CancelLeg("x1", unless_answered=True), HangupCaller(), CrmFinish("k.2", 4, 0, "304")]
    assert d.call.state is State.DONE and d.call.handled_by == "1001"


def test_a_transfer_to_an_external_number_stays_registered_to_the_employee_who_transferred() -> None:
    d = Driver(one_queue(record=False))
    d(started())
    d(LegAnswered("c-leg1"), 5)
    assert d(Transferred("x1", number="79990001122", attended=True), 20) == [
        CrmFinish("k.1", 1, 15, "200"),
        register(1, n=2, t=20, call_type=CallType.INCOMING_REDIRECTED),
    ]
    assert d.call.talk == Talk("k.2", "x1", "", 0, at(20))
    assert d(CallerHungUp(), 80) == [CancelLeg("x1"), CrmFinish("k.2", 1, 60, "200")]


def test_a_call_nobody_can_own_is_connected_and_transferred_without_any_crm_call() -> None:
    d = Driver(route(ToNumber("74950000000")))
    assert d(started()) == [AnswerCaller(), StartMusic(), RingNumber("c-leg1", "74950000000", 30.0)]
    assert d(LegAnswered("c-leg1"), 3) == [StopMusic(), ConnectLeg("c-leg1"), StartRecording("c-rec2")]
    assert d(Transferred("x1", number="79990001122", attended=True), 9) == [StartRecording("c-rec3")]
    assert d.call.talk == Talk("", "x1", "", 0, at(9))
    assert d(CallerHungUp(), 10) == [CancelLeg("x1")]
    assert d.call.state is State.DONE
