"""Per-line media: the greeting before routing, the line's music-on-hold class and voicemail prompt (each falling
back to the plan's), a prompt Asterisk could not play, and the telephony-wide intercept code."""

from __future__ import annotations

from dataclasses import replace

from bridge.domain.commands import (
    AnswerCaller,
    CancelLeg,
    ConnectLeg,
    LookupCrm,
    PlayPrompt,
    RecordVoicemail,
    RingAgent,
    StartMusic,
)
from bridge.domain.events import CallerHungUp, CrmLookedUp, Intercepted, PromptFinished, TimerFired
from bridge.domain.scheme import KnownClient, Rule, ToEmployee, ToQueue, ToVoicemail
from bridge.domain.state import State
from tests.domain.builders import LINE, Driver, plan, queue, register, route, started


def with_line(the_plan, **line):  # type: ignore[no-untyped-def]
    return replace(the_plan, lines={LINE: replace(the_plan.lines[LINE], **line)})


def test_the_greeting_plays_before_routing_then_the_line_rings_with_its_music_class() -> None:
    the_plan = with_line(
        route(ToEmployee("1001"), default_ext="1005"), greeting="sound:custom/hello", moh_class="sales"
    )
    d = Driver(the_plan)
    assert d(started()) == [AnswerCaller(), PlayPrompt("c-prompt1", "sound:custom/hello")]
    assert d.call.state is State.GREETING and not d.call.walk
    assert d(PromptFinished("c-prompt0"), 1) == [] and d.call.ignored  # not the greeting's playback
    commands = d(PromptFinished("c-prompt1"), 4)
    assert commands[:3] == [register(5), StartMusic("sales"), RingAgent("c-leg2", "1001", 20.0)]
    assert d.call.state is State.RINGING


def test_the_plans_greeting_serves_a_line_without_one_and_the_lookup_follows_it() -> None:
    the_plan = plan(Rule(KnownClient(), ToEmployee("1001")), fallback=ToEmployee("1002"), default_ext="1005")
    the_plan = replace(the_plan, greeting="sound:hello")
    d = Driver(the_plan)
    assert d(started()) == [AnswerCaller(), PlayPrompt("c-prompt1", "sound:hello")]
    assert d(PromptFinished("c-prompt1"), 3) == [LookupCrm("79161234567"), StartMusic()]
    assert d.call.state is State.LOOKUP
    assert RingAgent("c-leg2", "1002", 20.0) in d(CrmLookedUp(None), 3.5)


def test_a_greeting_asterisk_could_not_play_is_named_and_the_call_goes_on() -> None:
    d = Driver(with_line(route(ToEmployee("1001"), default_ext="1005"), greeting="sound:custom/missing"))
    d(started())
    commands = d(PromptFinished("c-prompt1", failed="sound:custom/missing"), 0.1)
    assert RingAgent("c-leg2", "1001", 20.0) in commands
    assert d.call.warning == "could not play sound:custom/missing (is the sound file installed?): going on"


def test_a_caller_who_hangs_up_during_the_greeting_ends_the_call() -> None:
    d = Driver(with_line(route(ToEmployee("1001"), default_ext="1005"), greeting="sound:hello"))
    d(started())
    d(CallerHungUp(), 2)
    assert d.call.state in (State.DONE, State.WRAP_UP)
    assert d(TimerFired(), 3) == []


def test_the_lines_voicemail_prompt_wins_over_the_plans() -> None:
    d = Driver(with_line(route(ToVoicemail("1005"), default_ext="1005"), voicemail_prompt="sound:custom/vm-sales"))
    assert d(started())[-1] == PlayPrompt("c-prompt1", "sound:custom/vm-sales")
    d = Driver(route(ToVoicemail("1005"), default_ext="1005"))
    assert d(started())[-1] == PlayPrompt("c-prompt1", "sound:vm-intro")


def test_the_telephony_wide_code_takes_any_group_a_groups_own_code_only_its_own() -> None:
    sales = queue("sales", "1001", "1003", rings_per_member=2, intercept_code="*8")
    support = queue("support", "1002", "1003", rings_per_member=2)
    the_plan = replace(plan(Rule(KnownClient(False), ToQueue("support")), queues=(sales, support),
                            default_ext="1005"), intercept_code="*9")  # fmt: skip
    d = Driver(the_plan)
    d(started())
    d(CrmLookedUp(None), 0.1)
    assert d(Intercepted("1003", "i1", "*8"), 1) == [CancelLeg("i1")]  # sales' code: not this group's call
    assert ConnectLeg("i2") in d(Intercepted("1003", "i2", "*9"), 2)
    assert the_plan.intercepts(sales, "1003", "*8") and the_plan.intercepts(sales, "1001", "*9")
    assert the_plan.intercepts(support, "1002", "") and not the_plan.intercepts(support, "1001", "*9")


def test_a_lines_media_that_fails_is_replaced_by_the_plans_and_a_failing_plans_is_skipped() -> None:
    the_plan = replace(route(ToVoicemail("1005"), default_ext="1005"), greeting="sound:hello")
    d = Driver(with_line(the_plan, greeting="sound:custom/gone", voicemail_prompt="sound:custom/vm-gone"))
    d(started())
    assert d(PromptFinished("c-prompt1", failed="sound:custom/gone"), 0.1) == [PlayPrompt("c-prompt2", "sound:hello")]
    assert d.call.state is State.GREETING and d.call.warning.endswith("playing sound:hello instead")
    assert d(PromptFinished("c-prompt2", failed="sound:hello"), 0.2)[-1] == PlayPrompt(
        "c-prompt3", "sound:custom/vm-gone"
    )
    assert d.call.state is State.VOICEMAIL_PROMPT and d.call.warning.endswith("going on")
    assert d(PromptFinished("c-prompt3", failed="sound:custom/vm-gone"), 0.3) == [
        PlayPrompt("c-prompt4", "sound:vm-intro")
    ]
    assert isinstance(d(PromptFinished("c-prompt4"), 2)[0], RecordVoicemail)
