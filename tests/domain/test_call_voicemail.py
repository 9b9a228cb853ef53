"""Voicemail: the intro, the recording until hang-up or its maximum, missed for the box's owner, attach after finish."""

from __future__ import annotations

from bridge.domain.commands import (
    AnswerCaller,
    CancelLeg,
    CrmAttachRecord,
    CrmFinish,
    CrmHide,
    CrmMissedTask,
    CrmNotify,
    CrmShow,
    HangupCaller,
    PlayPrompt,
    RecordVoicemail,
    RingAgent,
    StartMusic,
    StopMusic,
)
from bridge.domain.events import (
    CallerHungUp,
    LegEnded,
    LegOutcome,
    PromptFinished,
    RecordingReady,
    TimerFired,
)
from bridge.domain.scheme import (
    Always,
    Availability,
    Rule,
    ToEmployee,
    ToQueue,
    ToVoicemail,
)
from bridge.domain.state import State, Walk, WalkKind
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
                [
                    CancelLeg("c-leg1", unless_answered=True),
                    StopMusic(),
                    PlayPrompt("c-prompt2", "sound:vm-intro"),
                    CrmHide("k.1", (1,)),
                ],
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


def _voicemail_with_a_task() -> Driver:
    d = Driver(route(ToVoicemail("1005"), default_ext="1004", missed_task=True))
    d(started())
    d(PromptFinished("c-prompt1"), 2)
    return d


VM_TASK = CrmMissedTask(
    5, f"Skipped incoming call from {CALLER}", f"{VM_TEXT} Called at 2026-03-10T10:00:00+00:00.", "k.1"
)


def test_a_voicemails_task_waits_for_the_recording_it_links() -> None:
    d = _voicemail_with_a_task()
    assert d(CallerHungUp(), 30) == [CrmFinish("k.1", 5, 0, "304")], "no task before the recording is attached"
    assert d.call.state is State.WRAP_UP and d.call.held == (VM_TASK,)
    assert d(RecordingReady("k.1-voicemail"), 31) == [CrmAttachRecord("k.1", "k.1-voicemail"), VM_TASK]
    assert d.call.state is State.DONE and d.call.held == ()


def test_a_voicemail_stored_at_once_has_its_task_right_after_the_attach() -> None:
    d = _voicemail_with_a_task()
    assert d(RecordingReady("k.1-voicemail"), 30) == [
        HangupCaller(),
        CrmFinish("k.1", 5, 0, "304"),
        CrmAttachRecord("k.1", "k.1-voicemail"),
        VM_TASK,
    ]


def test_a_voicemails_task_still_goes_when_its_recording_never_arrives() -> None:
    d = _voicemail_with_a_task()
    d(CallerHungUp(), 10)
    assert d(TimerFired(), 40) == [VM_TASK]
    assert d.call.state is State.DONE and d.call.warning == "recordings not stored in time: k.1-voicemail"


def test_a_missed_call_without_a_message_gets_its_task_at_once_and_unlinked() -> None:
    d = Driver(route(ToVoicemail("1005"), default_ext="1004", missed_task=True))
    d(started())
    task = CrmMissedTask(
        5,
        f"Skipped incoming call from {CALLER}",
        f"A call from {CALLER} to line Sales was not answered. Called at 2026-03-10T10:00:00+00:00.",
    )
    assert d(CallerHungUp(), 1) == [CrmFinish("k.1", 5, 0, "304"), task]
