"""The races (late answers, hang-ups in every state), events that do not belong, nothing after the end, the
core's own guards (hop limit, illegal moves)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.domain.call import TABLE, step
from bridge.domain.commands import (
    AnswerCaller,
    CancelLeg,
    ConnectLeg,
    CrmFinish,
    CrmHide,
    CrmShow,
    HangupCaller,
    RingAgent,
    StartMusic,
    StopMusic,
    StopPrompt,
)
from bridge.domain.events import (
    AvailabilityChanged,
    CallerHungUp,
    CallStarted,
    CrmClient,
    CrmLookedUp,
    DtmfReceived,
    Event,
    Intercepted,
    LegAnswered,
    LegEnded,
    LegOutcome,
    PromptFinished,
    RecordingReady,
    TimerFired,
    Transferred,
)
from bridge.domain.routing import MAX_HOPS
from bridge.domain.scheme import (
    Availability,
    HoldUntilFree,
    IvrMenu,
    KnownClient,
    Plan,
    Rule,
    ToIvr,
    ToQueue,
    ToResponsible,
    ToVoicemail,
)
from bridge.domain.state import MOVES, Call, IllegalMove, State, Talk, Walk, WalkKind, move
from tests.domain.builders import (
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


def one_queue(**kw: object) -> Plan:
    return route(ToQueue("q"), queues=(queue("q", "1001", "1002"),), default_ext="1005", **kw)


def test_an_answer_that_races_the_ring_timeout_wins_the_call() -> None:
    ringing = Walk(WalkKind.QUEUE, queue="q", order=("1001", "1002"), position=1, ring_seconds=15.0)
    before = Driver(one_queue(record=False))
    before(started())
    play(
        one_queue(record=False),
        [
            (
                15,
                TimerFired(),
                [
                    CancelLeg("c-leg1", unless_answered=True),
                    RingAgent("c-leg2", "1002", 15.0),
                    CrmHide("k.1", (1,)),
                    CrmShow("k.1", (2,)),
                ],
                {
                    "walk": ringing,
                    "ringing": (leg(2, "1002", 15),),
                    "released": (leg(1, "1001"),),
                    "grace": ("c-leg1",),
                    "crm_legs": (crm(1, 5, shown=(2,)),),
                    "timer": at(30),
                    "serial": 2,
                },
            ),
            (
                15.2,
                LegAnswered("c-leg1"),
                [StopMusic(), ConnectLeg("c-leg1"), CancelLeg("c-leg2"), CrmHide("k.1", (2,)), CrmShow("k.1", (1,))],
                {
                    "state": State.TALKING,
                    "walk": None,
                    "ringing": (),
                    "released": (leg(2, "1002", 15),),
                    "talk": Talk("k.1", "c-leg1", "1001", 1, at(15.2)),
                    "crm_legs": (crm(1, 5, shown=(1,)),),
                    "music": False,
                    "timer": None,
                },
            ),
        ],
        call=before.call,
    )


def test_the_grace_of_a_ring_timeout_lasts_one_step() -> None:
    d = Driver(one_queue())
    d(started())
    d(TimerFired(), 15)
    d(AvailabilityChanged("1003", Availability.BUSY), 15.1)
    assert d(LegAnswered("c-leg1"), 15.2) == [CancelLeg("c-leg1")]
    assert d.call.state is State.RINGING and d.call.ringing[0].id == "c-leg2"


def test_an_answered_leg_that_never_joins_is_no_conversation_and_the_walk_goes_on() -> None:
    q = queue("q", "1001", "1002", "1003")
    d = Driver(route(ToQueue("q"), queues=(q,), default_ext="1005"))
    d(started())
    d(TimerFired(), 15)
    assert ConnectLeg("c-leg1") in d(LegAnswered("c-leg1"), 15.2)
    assert d.call.state is State.TALKING and d.call.crm_legs[0].recording
    # the shell says the connect failed (its cancel crossed the answer): the agent never talked to the caller
    commands = d(LegEnded("c-leg1", LegOutcome.FAILED), 15.4)
    assert d.call.state is State.RINGING and d.call.talk is None and d.call.talks == ()
    assert [leg.ext for leg in d.call.ringing] == ["1003"]
    assert commands[0] == StartMusic() and RingAgent(d.call.ringing[0].id, "1003", 15.0) in commands
    assert CrmHide("k.1", (1,)) in commands and CrmShow("k.1", (3,)) in commands
    assert not d.call.crm_legs[0].recording, "the recording of a conversation that never happened is not awaited"
    # the PBX's own word on the leg's end comes later and changes nothing
    assert d(LegEnded("c-leg1", LegOutcome.HANGUP), 15.5) == []
    rung = d.call.ringing[0].id
    assert d(CallerHungUp(), 20) == [CancelLeg(rung), CrmHide("k.1", (3,)), CrmFinish("k.1", 5, 0, "304")]
    assert d.call.state is State.DONE, "no recording is awaited"


def test_an_answer_that_won_over_a_prompt_and_never_joins_passes_the_call_on() -> None:
    q = queue("q", "1001", rings_per_member=1, final=ToVoicemail("1005"))
    d = Driver(route(ToQueue("q"), queues=(q,), default_ext="1005", record=False))
    d(started())
    d(TimerFired(), 5)
    d(LegAnswered("c-leg1"), 5.3)
    assert d.call.state is State.TALKING
    commands = d(LegEnded("c-leg1", LegOutcome.FAILED), 5.5)
    assert HangupCaller() in commands and CrmFinish("k.1", 5, 0, "304") in commands  # the line's fallback
    assert d.call.state is State.DONE and d.call.talks == ()


def test_a_late_answer_also_wins_over_the_voicemail_the_timeout_started() -> None:
    q = queue("q", "1001", rings_per_member=1, final=ToVoicemail("1005"))
    d = Driver(route(ToQueue("q"), queues=(q,), default_ext="1005", record=False))
    d(started())
    d(TimerFired(), 5)
    assert d.call.state is State.VOICEMAIL_PROMPT
    assert d(LegAnswered("c-leg1"), 5.3) == [StopPrompt("c-prompt2"), ConnectLeg("c-leg1"), CrmShow("k.1", (1,))]
    assert d.call.state is State.TALKING and d.call.voicemail_user == 0
    assert d(CallerHungUp(), 9.3) == [CancelLeg("c-leg1"), CrmFinish("k.1", 1, 4, "200")]


def test_events_that_do_not_belong_to_the_call_change_nothing() -> None:
    d = Driver(one_queue())
    d(started())
    d(LegAnswered("c-leg1"), 2)
    before = d.call
    for event in (
        LegAnswered("c-leg1"),
        LegAnswered("forged"),
        LegEnded("forged", LegOutcome.BUSY),
        RecordingReady("forged.wav"),
        CallStarted("74951112233", "1"),
        CrmLookedUp(None),
        TimerFired(),
    ):
        assert d(event, 3) == []
        assert d.call.ignored and replace(d.call, ignored="") == replace(before, ignored="")


# --- the caller hangs up at any point ----------------------------------------------------------------


MENU = IvrMenu("m", "sound:m", (("1", ToQueue("q")),))


def reach(state: State) -> Driver:
    """A call in ``state``."""
    q = queue("q", "1001", "1002")
    if state is State.LOOKUP:
        d = Driver(plan(Rule(KnownClient(), ToResponsible()), queues=(q,), default_ext="1005"))
        d(started())
        return d
    actions = {
        State.RINGING: ToQueue("q"),
        State.HOLDING: HoldUntilFree("q"),
        State.MENU_PROMPT: ToIvr("m"),
        State.MENU_WAIT: ToIvr("m"),
        State.VOICEMAIL_PROMPT: ToVoicemail(),
        State.VOICEMAIL_RECORDING: ToVoicemail(),
        State.TALKING: ToQueue("q"),
    }
    d = Driver(route(actions[state], queues=(q,), menus=(MENU,), default_ext="1005", record=False))
    busy = {"e1001": Availability.BUSY, "e1002": Availability.BUSY} if state is State.HOLDING else {}
    d(started(**busy))
    if state in (State.MENU_WAIT, State.VOICEMAIL_RECORDING):
        d(PromptFinished(d.call.prompt), 1)
    if state is State.TALKING:
        d(LegAnswered("c-leg1"), 1)
    assert d.call.state is state
    return d


@pytest.mark.parametrize(
    "state",
    [State.LOOKUP, State.RINGING, State.HOLDING, State.MENU_PROMPT, State.MENU_WAIT, State.VOICEMAIL_PROMPT],
)
def test_the_caller_hanging_up_before_anyone_answers_is_a_missed_call_finished_once(state: State) -> None:
    d = reach(state)
    commands = d(CallerHungUp(), 10)
    finishes = [c for c in d.all_commands() if isinstance(c, CrmFinish)]
    assert finishes == [CrmFinish("k.1", 5, 0, "304")]
    assert not any(isinstance(c, HangupCaller) for c in commands)
    assert [c for c in commands if isinstance(c, CancelLeg)] == [CancelLeg(x.id) for x in reach(state).call.ringing]
    assert d.call.state is State.DONE and d.call.deadline is None


@pytest.mark.parametrize("state", [State.VOICEMAIL_RECORDING, State.TALKING])
def test_the_caller_hanging_up_after_a_message_or_a_talk(state: State) -> None:
    d = reach(state)
    d(CallerHungUp(), 10)
    finish = [c for c in d.all_commands() if isinstance(c, CrmFinish)]
    expected = CrmFinish("k.1", 5, 0, "304") if state is State.VOICEMAIL_RECORDING else CrmFinish("k.1", 1, 9, "200")
    assert finish == [expected]
    assert d.call.state in (State.WRAP_UP, State.DONE)


def test_nothing_happens_after_the_end() -> None:
    d = reach(State.TALKING)
    d(CallerHungUp(), 10)
    assert d.call.state is State.DONE
    everything: list[Event] = [
        CallStarted("74951112233", "1"),
        CrmLookedUp(CrmClient("LEAD", 1)),
        AvailabilityChanged("1001", Availability.AVAILABLE),
        LegAnswered("c-leg1"),
        LegEnded("c-leg1", LegOutcome.HANGUP),
        CallerHungUp(),
        DtmfReceived("1"),
        PromptFinished("c-prompt1"),
        RecordingReady("c-rec2"),
        Intercepted("1001", "i1"),
        Transferred("x1", "1002"),
        TimerFired(),
    ]
    for event in everything:
        assert d(event, 100) == [] and d.call.ignored and d.call.deadline is None
    assert {e for s, e in TABLE if s is State.DONE} == set()


def test_intercepting_a_call_that_does_not_ring_is_refused() -> None:
    d = reach(State.MENU_WAIT)
    assert d(Intercepted("1001", "i1", "*8"), 2) == [CancelLeg("i1")]
    assert d.call.state is State.MENU_WAIT


def test_a_routing_loop_is_cut_after_the_hop_limit() -> None:
    q = queue("q", "1001", final=ToQueue("q"))
    d = Driver(route(ToQueue("q"), queues=(q,), default_ext="1005"))
    commands = d(started(e1001=Availability.ABSENT))
    assert commands == [AnswerCaller(), register(5), HangupCaller(), CrmFinish("k.1", 5, 0, "304")]
    assert d.call.hops == MAX_HOPS and d.call.warning.startswith("routing loop")


def test_an_illegal_move_of_the_core_itself_raises() -> None:
    call = reach(State.RINGING).call
    with pytest.raises(IllegalMove, match="ringing -> voicemail_recording"):
        move(call, State.VOICEMAIL_RECORDING)
    assert move(call, State.RINGING) is call
    assert MOVES[State.DONE] == frozenset()


def test_step_reports_the_ignored_reason_and_keeps_the_call() -> None:
    call: Call = reach(State.MENU_PROMPT).call
    new, commands = step(call, LegEnded("nope", LegOutcome.BUSY), at(5))
    assert commands == [] and new.ignored == "leg nope is not one of this call's"
    assert replace(new, ignored="") == call
    new, _ = step(new, Transferred("x"), at(6))
    assert new.ignored == "Transferred has no meaning in state menu_prompt"
    new, _ = step(new, CrmLookedUp(None), at(6))
    assert new.ignored == "CrmLookedUp has no meaning in state menu_prompt"
