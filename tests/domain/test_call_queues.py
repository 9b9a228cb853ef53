"""Queue groups: in_order, evenly and everybody walks, skipping and releasing unavailable members, interception."""

from __future__ import annotations

from dataclasses import replace

from bridge.domain.call import only_records_availability
from bridge.domain.commands import (
    AnswerCaller,
    CancelLeg,
    ConnectLeg,
    CrmFinish,
    CrmHide,
    CrmMissedTask,
    CrmShow,
    HangupCaller,
    RingAgent,
    StartMusic,
    StartRecording,
    StopMusic,
)
from bridge.domain.events import (
    AvailabilityChanged,
    CallerHungUp,
    CallStarted,
    Intercepted,
    LegAnswered,
    LegEnded,
    LegOutcome,
    TimerFired,
)
from bridge.domain.scheme import Availability, Distribution, Hangup, ToQueue
from bridge.domain.state import State, Talk, Walk, WalkKind
from bridge.domain.walk import ENDLESS_LEG_SECONDS
from tests.domain.builders import (
    CALLER,
    LINE,
    START,
    Driver,
    at,
    crm,
    employees,
    leg,
    play,
    queue,
    register,
    route,
    started,
)

A = Availability
BUSY, UNREG = A.BUSY, A.UNREGISTERED


def test_in_order_walks_members_ring_by_ring_skips_the_unavailable_and_stops_after_its_passes() -> None:
    q = queue("q", "1001", "1002", "1003", rings_per_member=2, passes=2, final=Hangup(), missed_owner="1005")
    plan = route(ToQueue("q"), queues=(q,), default_ext="1004", missed_task=True, record=False)
    walk = Walk(WalkKind.QUEUE, queue="q", order=("1001", "1002", "1003"), position=0, ring_seconds=10.0)
    play(
        plan,
        [
            (
                0,
                started(e1002=UNREG),
                [AnswerCaller(), register(4), StartMusic(), RingAgent("c-leg1", "1001", 10.0), CrmShow("k.1", (1,))],
                {
                    **START,
                    "state": State.RINGING,
                    "availability": {"1002": UNREG},
                    "rule_index": 1,
                    "hops": 1,
                    "last_queue": "q",
                    "walk": walk,
                    "ringing": (leg(1, "1001"),),
                    "crm_legs": (crm(1, 4, shown=(1,)),),
                    "music": True,
                    "timer": at(10),
                    "serial": 1,
                },
            ),
            (
                10,
                TimerFired(),
                [
                    CancelLeg("c-leg1", unless_answered=True),
                    RingAgent("c-leg2", "1003", 10.0),
                    CrmHide("k.1", (1,)),
                    CrmShow("k.1", (3,)),
                ],
                {
                    "walk": Walk(WalkKind.QUEUE, "q", walk.order, position=2, ring_seconds=10.0),
                    "ringing": (leg(2, "1003", 10),),
                    "released": (leg(1, "1001"),),
                    "grace": ("c-leg1",),
                    "crm_legs": (crm(1, 4, shown=(3,)),),
                    "timer": at(20),
                    "serial": 2,
                },
            ),
            (10.2, LegEnded("c-leg1", LegOutcome.NO_ANSWER), [], {"released": ()}),
            (
                15,
                LegEnded("c-leg2", LegOutcome.BUSY),
                [RingAgent("c-leg3", "1001", 10.0), CrmHide("k.1", (3,)), CrmShow("k.1", (1,))],
                {
                    "walk": Walk(WalkKind.QUEUE, "q", walk.order, position=3, ring_seconds=10.0),
                    "ringing": (leg(3, "1001", 15),),
                    "crm_legs": (crm(1, 4, shown=(1,)),),
                    "timer": at(25),
                    "serial": 3,
                },
            ),
            (20, AvailabilityChanged("1003", BUSY), [], {"availability": {"1002": UNREG, "1003": BUSY}}),
            (
                25,
                TimerFired(),
                [
                    CancelLeg("c-leg3", unless_answered=True),
                    HangupCaller(),
                    CrmHide("k.1", (1,)),
                    CrmFinish("k.1", 5, 0, "304"),
                    CrmMissedTask(
                        5,
                        f"Skipped incoming call from {CALLER}",
                        f"A call from {CALLER} to line Sales was not answered. Called at 2026-03-10T10:00:00+00:00.",
                    ),
                ],
                {
                    "state": State.DONE,
                    "hops": 2,
                    "walk": None,
                    "ringing": (),
                    "released": (leg(3, "1001", 15),),
                    "crm_legs": (crm(1, 4, finished=True),),
                    "music": False,
                    "timer": None,
                    "ended_at": at(25),
                },
            ),
            (26, LegEnded("c-leg3", LegOutcome.NO_ANSWER), [], {"ignored": "LegEnded has no meaning in state done"}),
        ],
    )


def test_evenly_rings_the_member_with_fewest_answered_calls_first_ties_in_list_order() -> None:
    q = queue("q", "1001", "1002", "1003", dist=Distribution.EVENLY, rings_per_member=1)
    d = Driver(route(ToQueue("q"), queues=(q,), default_ext="1005"))
    d(CallStarted(LINE, CALLER, crm_key="k", answered_today={"1001": 7, "1002": 2}))
    assert d.call.walk is not None and d.call.walk.order == ("1003", "1002", "1001")
    rung = [c.ext for _, _, cmds in d.log for c in cmds if isinstance(c, RingAgent)]
    for t in (5, 10):
        rung += [c.ext for c in d(TimerFired(), t) if isinstance(c, RingAgent)]
    assert rung == ["1003", "1002", "1001"]
    assert [type(c) for c in d(TimerFired(), 15)][:2] == [CancelLeg, HangupCaller]
    assert d.call.state is State.DONE


def test_everybody_rings_every_available_member_at_once_with_one_card_and_hides_the_rest_on_answer() -> None:
    q = queue("q", "1001", "1002", "1003", "1004", dist=Distribution.EVERYBODY, rings_per_member=4)
    plan = route(ToQueue("q"), queues=(q,), default_ext="1005")
    ringing = (leg(1, "1001"), leg(2, "1003"), leg(3, "1004"))
    play(
        plan,
        [
            (
                0,
                started(e1002=BUSY),
                [
                    AnswerCaller(),
                    register(5),
                    StartMusic(),
                    RingAgent("c-leg1", "1001", 20.0),
                    RingAgent("c-leg2", "1003", 20.0),
                    RingAgent("c-leg3", "1004", 20.0),
                    CrmShow("k.1", (1, 3, 4)),
                ],
                {
                    **START,
                    "state": State.RINGING,
                    "availability": {"1002": BUSY},
                    "rule_index": 1,
                    "hops": 1,
                    "last_queue": "q",
                    "walk": Walk(WalkKind.EVERYBODY, queue="q", ring_seconds=20.0),
                    "ringing": ringing,
                    "crm_legs": (crm(1, 5, shown=(1, 3, 4)),),
                    "music": True,
                    "timer": at(20),
                    "serial": 3,
                },
            ),
            (
                2,
                LegEnded("c-leg2", LegOutcome.REJECTED),
                [CrmHide("k.1", (3,))],
                {"ringing": (ringing[0], ringing[2]), "crm_legs": (crm(1, 5, shown=(1, 4)),)},
            ),
            (
                6,
                LegAnswered("c-leg3"),
                [
                    StopMusic(),
                    ConnectLeg("c-leg3"),
                    CancelLeg("c-leg1"),
                    StartRecording("c-rec4"),
                    CrmHide("k.1", (1,)),
                ],
                {
                    "state": State.TALKING,
                    "walk": None,
                    "ringing": (),
                    "released": (ringing[0],),
                    "talk": Talk("k.1", "c-leg3", "1004", 4, at(6)),
                    "crm_legs": (crm(1, 5, shown=(4,), recording="c-rec4"),),
                    "music": False,
                    "timer": None,
                    "serial": 4,
                },
            ),
            # the race: the first member answered a moment later too; the first answer won, this one is hung up
            (6.1, LegAnswered("c-leg1"), [CancelLeg("c-leg1")], {}),
        ],
    )


def test_everybody_rings_at_most_ten_devices_and_its_timeout_runs_the_final_action() -> None:
    staff = employees(*[str(1001 + i) for i in range(12)])
    q = queue("q", *staff, dist=Distribution.EVERYBODY, rings_per_member=2, final=Hangup())
    d = Driver(route(ToQueue("q"), queues=(q,), staff=staff, default_ext="1012"))
    commands = d(started())
    rung = [c.ext for c in commands if isinstance(c, RingAgent)]
    assert rung == [str(1001 + i) for i in range(10)]
    assert [c for c in commands if isinstance(c, CrmShow)] == [CrmShow("k.1", tuple(range(1, 11)))]
    # a ringing member goes busy: released and hidden; a member who becomes free does not join a full group
    assert d(AvailabilityChanged("1003", BUSY), 3) == [CancelLeg("c-leg3"), CrmHide("k.1", (3,))]
    assert d(AvailabilityChanged("1011", A.AVAILABLE), 4) == [RingAgent("c-leg11", "1011", 10.0), CrmShow("k.1", (11,))]
    assert d(AvailabilityChanged("1011", A.AVAILABLE), 4.5) == []
    shown = (1, 2, 4, 5, 6, 7, 8, 9, 10, 11)
    assert d(TimerFired(), 10) == [
        *[CancelLeg(f"c-leg{i}", unless_answered=True) for i in shown],
        HangupCaller(),
        CrmHide("k.1", shown),
        CrmFinish("k.1", 12, 0, "304"),
    ]
    assert d.call.state is State.DONE


def test_everybody_endless_rings_again_when_legs_time_out_and_runs_the_final_action_when_nobody_is_left() -> None:
    q = queue("q", "1001", "1002", dist=Distribution.EVERYBODY, rings_per_member=0, final=Hangup())
    d = Driver(route(ToQueue("q"), queues=(q,), default_ext="1005"))
    d(started())
    assert d.call.deadline is None
    assert d(LegEnded("c-leg1", LegOutcome.NO_ANSWER), 60) == [RingAgent("c-leg3", "1001", ENDLESS_LEG_SECONDS)]
    assert d(TimerFired(), 61).__len__() == 0 and d.call.ignored == "no deadline has passed"
    assert d(LegEnded("c-leg2", LegOutcome.BUSY), 62) == [CrmHide("k.1", (2,))]
    # the last member ringing is no longer free: released, nobody is left, the final action hangs up
    assert d(AvailabilityChanged("1001", A.ABSENT), 63) == [
        CancelLeg("c-leg3"),
        HangupCaller(),
        CrmHide("k.1", (1,)),
        CrmFinish("k.1", 5, 0, "304"),
    ]
    assert d.call.state is State.DONE


def test_every_member_offline_runs_the_final_action_at_once() -> None:
    q = queue("q", "1001", "1002", final=ToQueue("q2"))
    q2 = queue("q2", "1003", dist=Distribution.EVERYBODY, rings_per_member=1, final=ToQueue("q3"))
    q3 = queue("q3", "1004", dist=Distribution.EVERYBODY, rings_per_member=1)
    d = Driver(route(ToQueue("q"), queues=(q, q2, q3), default_ext="1005"))
    assert d(started(e1001=BUSY, e1002=BUSY, e1003=BUSY))[3] == RingAgent("c-leg1", "1004", 5.0)
    d = Driver(route(ToQueue("q"), queues=(q, q2), default_ext="1005"))
    commands = d(started(e1001=A.NOT_CLOCKED_IN, e1002=A.ABSENT))
    assert commands == [
        AnswerCaller(),
        register(5),
        StartMusic(),
        RingAgent("c-leg1", "1003", 5.0),
        CrmShow("k.1", (3,)),
    ]
    assert d.call.last_queue == "q2" and d.call.hops == 2


def test_a_ringing_member_who_becomes_unavailable_is_released_at_once_and_the_walk_moves_on() -> None:
    q = queue("q", "1001", "1002", rings_per_member=3)
    d = Driver(route(ToQueue("q"), queues=(q,), default_ext="1005"))
    d(started())
    assert d(AvailabilityChanged("1001", UNREG), 4) == [
        CancelLeg("c-leg1"),
        RingAgent("c-leg2", "1002", 15.0),
        CrmHide("k.1", (1,)),
        CrmShow("k.1", (2,)),
    ]
    assert d.call.timer == at(19)
    # the member released for unavailability does not win the call if it still answers
    assert d(LegAnswered("c-leg1"), 5) == [CancelLeg("c-leg1")]
    assert d(AvailabilityChanged("1001", A.AVAILABLE), 6) == []


def test_a_member_intercepts_the_call_ringing_in_their_group() -> None:
    q = queue("q", "1001", "1002", "1003", rings_per_member=2, intercept_code="*8")
    talk = Talk("k.1", "icpt-3", "1003", 3, at(3))
    call = play(
        route(ToQueue("q"), queues=(q,), default_ext="1005", record=False),
        [
            (
                0,
                started(),
                [AnswerCaller(), register(5), StartMusic(), RingAgent("c-leg1", "1001", 10.0), CrmShow("k.1", (1,))],
                {
                    **START,
                    "state": State.RINGING,
                    "rule_index": 1,
                    "hops": 1,
                    "last_queue": "q",
                    "walk": Walk(WalkKind.QUEUE, queue="q", order=q.members, position=0, ring_seconds=10.0),
                    "ringing": (leg(1, "1001"),),
                    "crm_legs": (crm(1, 5, shown=(1,)),),
                    "music": True,
                    "timer": at(10),
                    "serial": 1,
                },
            ),
            # someone outside the group, or the wrong code: refused, their channel hung up, nothing else changes
            (
                2,
                Intercepted("1004", "icpt-1", "*8"),
                [CancelLeg("icpt-1")],
                {"warning": "1004 may not intercept this call now"},
            ),
            (
                2,
                Intercepted("1003", "icpt-2", "*9"),
                [CancelLeg("icpt-2")],
                {"warning": "1003 may not intercept this call now"},
            ),
            (
                3,
                Intercepted("1003", "icpt-3", "*8"),
                [StopMusic(), ConnectLeg("icpt-3"), CancelLeg("c-leg1"), CrmHide("k.1", (1,)), CrmShow("k.1", (3,))],
                {
                    "state": State.TALKING,
                    "walk": None,
                    "ringing": (),
                    "released": (leg(1, "1001"),),
                    "talk": talk,
                    "crm_legs": (crm(1, 5, shown=(3,)),),
                    "music": False,
                    "timer": None,
                },
            ),
            (
                4,
                Intercepted("1002", "icpt-4"),
                [CancelLeg("icpt-4")],
                {"warning": "1002 may not intercept this call now"},
            ),
            (
                33,
                CallerHungUp(),
                [CancelLeg("icpt-3"), CrmFinish("k.1", 3, 30, "200")],
                {
                    "state": State.DONE,
                    "talk": None,
                    "talks": (replace(talk, ended_at=at(33)),),
                    "crm_legs": (crm(1, 5, finished=True),),
                    "ended_at": at(33),
                },
            ),
        ],
    )
    assert call.handled_by == "1003"


def test_a_walk_acts_on_the_news_of_its_ringing_agent_and_of_members_who_become_free_only() -> None:
    q = queue("q", "1001", "1002", rings_per_member=1)
    d = Driver(route(ToQueue("q"), queues=(q,), default_ext="1005"))
    d(started(e1002=Availability.BUSY))
    assert [leg.ext for leg in d.call.ringing] == ["1001"]
    assert not only_records_availability(d.call, "1001", Availability.BUSY), "its ringing agent"
    assert not only_records_availability(d.call, "1002", Availability.AVAILABLE), "a member who became free"
    assert only_records_availability(d.call, "1002", Availability.ABSENT)
    assert only_records_availability(d.call, "1003", Availability.AVAILABLE), "not a member"
