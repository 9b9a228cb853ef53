"""IVR menus: a key during or after the prompt, timeouts and invalid keys replay up to the limit, nested menus."""

from __future__ import annotations

from bridge.domain.commands import (
    AnswerCaller,
    CrmFinish,
    CrmShow,
    HangupCaller,
    PlayPrompt,
    RingAgent,
    StartMusic,
    StopPrompt,
)
from bridge.domain.events import CallerHungUp, DtmfReceived, PromptFinished, TimerFired
from bridge.domain.scheme import Always, IvrMenu, Plan, Rule, ToEmployee, ToIvr, ToQueue, ToVoicemail
from bridge.domain.state import MenuVisit, State, Walk, WalkKind
from tests.domain.builders import START, Driver, at, crm, leg, plan, play, queue, register, route, started

MAIN = IvrMenu(
    "main",
    "sound:main",
    (("1", ToQueue("q")), ("2", ToIvr("billing")), ("0", ToEmployee("1005"))),
    timeout=5.0,
    max_replays=2,
    on_fail=ToVoicemail("1005"),
)
BILLING = IvrMenu("billing", "sound:billing", (("1", ToQueue("q")), ("9", ToIvr("main"))), max_replays=0)


def ivr_plan() -> Plan:
    return route(ToIvr("main"), menus=(MAIN, BILLING), queues=(queue("q", "1001"),), default_ext="1005")


def test_menu_timeout_invalid_key_replay_nested_menu_then_a_queue() -> None:
    play(
        ivr_plan(),
        [
            (
                0,
                started(),
                [AnswerCaller(), register(5), PlayPrompt("c-prompt1", "sound:main")],
                {
                    **START,
                    "state": State.MENU_PROMPT,
                    "rule_index": 1,
                    "hops": 1,
                    "crm_legs": (crm(1, 5),),
                    "menu": MenuVisit("main"),
                    "prompt": "c-prompt1",
                    "serial": 1,
                },
            ),
            (4, PromptFinished("c-prompt1"), [], {"state": State.MENU_WAIT, "prompt": "", "timer": at(9)}),
            (8, TimerFired(), [], {"ignored": "no deadline has passed"}),
            (
                9,
                TimerFired(),
                [PlayPrompt("c-prompt2", "sound:main")],
                {
                    "state": State.MENU_PROMPT,
                    "menu": MenuVisit("main", replays=1),
                    "prompt": "c-prompt2",
                    "timer": None,
                    "serial": 2,
                },
            ),
            (
                10,
                DtmfReceived("7"),
                [StopPrompt("c-prompt2"), PlayPrompt("c-prompt3", "sound:option-is-invalid")],
                {"menu": MenuVisit("main", replays=2, invalid=True), "prompt": "c-prompt3", "serial": 3},
            ),
            (
                11,
                PromptFinished("c-prompt3"),
                [PlayPrompt("c-prompt4", "sound:main")],
                {"menu": MenuVisit("main", replays=2), "prompt": "c-prompt4", "serial": 4},
            ),
            (
                12,
                DtmfReceived("2"),
                [StopPrompt("c-prompt4"), PlayPrompt("c-prompt5", "sound:billing")],
                {"hops": 2, "menu": MenuVisit("billing"), "prompt": "c-prompt5", "serial": 5},
            ),
            (14, PromptFinished("c-prompt5"), [], {"state": State.MENU_WAIT, "prompt": "", "timer": at(19)}),
            (
                15,
                DtmfReceived("1"),
                [StartMusic(), RingAgent("c-leg6", "1001", 15.0), CrmShow("k.1", (1,))],
                {
                    "state": State.RINGING,
                    "hops": 3,
                    "last_queue": "q",
                    "menu": None,
                    "walk": Walk(WalkKind.QUEUE, queue="q", order=("1001",), position=0, ring_seconds=15.0),
                    "ringing": (leg(6, "1001", 15),),
                    "crm_legs": (crm(1, 5, shown=(1,)),),
                    "music": True,
                    "timer": at(30),
                    "serial": 6,
                },
            ),
            (16, DtmfReceived("1"), [], {"ignored": "DtmfReceived has no meaning in state ringing"}),
        ],
    )


def test_after_the_last_replay_the_menu_runs_on_fail() -> None:
    d = Driver(ivr_plan())
    d(started())
    for t in (5, 15):  # prompt ends, no key, replay; twice
        d(PromptFinished(d.call.prompt), t)
        assert d(TimerFired(), t + 5) == [PlayPrompt(f"c-prompt{t // 10 + 2}", "sound:main")]
    d(PromptFinished(d.call.prompt), 25)
    assert d(TimerFired(), 30) == [PlayPrompt("c-prompt4", "sound:vm-intro")]
    assert d.call.state is State.VOICEMAIL_PROMPT and d.call.menu is None


def test_an_invalid_key_when_no_replay_is_left_runs_on_fail_at_once() -> None:
    d = Driver(route(ToIvr("billing"), menus=(BILLING,), default_ext="1005"))
    d(started())
    assert d(DtmfReceived("5"), 1) == [StopPrompt("c-prompt1"), HangupCaller(), CrmFinish("k.1", 5, 0, "304")]


def test_a_key_during_the_prompt_stops_it_and_selects() -> None:
    d = Driver(ivr_plan())
    d(started())
    assert d(DtmfReceived("0"), 1) == [
        StopPrompt("c-prompt1"),
        StartMusic(),
        RingAgent("c-leg2", "1005", 20.0),
        CrmShow("k.1", (5,)),
    ]


def test_a_caller_who_hangs_up_in_the_menu_is_a_missed_call_for_the_line_owner() -> None:
    d = Driver(route(ToIvr("main"), menus=(MAIN,), default_ext="1005", missed_task=False))
    d(started())
    assert d(CallerHungUp(), 3) == [CrmFinish("k.1", 5, 0, "304")]
    assert d.call.state is State.DONE and d.call.deadline is None


def test_an_unknown_menu_passes_the_call_on() -> None:
    d = Driver(plan(Rule(Always(), ToIvr("nope")), fallback=ToEmployee("1002"), default_ext="1005"))
    assert d(started())[:4] == [AnswerCaller(), register(5), StartMusic(), RingAgent("c-leg1", "1002", 20.0)]
