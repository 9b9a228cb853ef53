"""Calls the bridge only watches on AMI: outbound from desk phones, click-to-call, callback, monitor-only lines."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.domain.commands import (
    CallType,
    Command,
    CrmAdopt,
    CrmAttachRecord,
    CrmFinish,
    CrmHide,
    CrmMissedTask,
    CrmNotify,
    CrmRegister,
    CrmShow,
)
from bridge.domain.events import (
    Direction,
    ObservedAnswered,
    ObservedEnded,
    ObservedEvent,
    ObservedRecording,
    ObservedRinging,
    ObservedStarted,
    ObservedStoppedRinging,
    TimerFired,
)
from bridge.domain.observed import Observed, ObservedState, start_observed, step
from tests.domain.builders import CALLER, LINE, T0, at, plan

OUT, IN = Direction.OUTBOUND, Direction.INBOUND
CLIENT = "84951234567"
S = ObservedState

Expect = tuple[float, ObservedEvent, list[Command], dict[str, Any]]


def play(script: list[Expect], **line_kw: Any) -> Observed:
    """Every step: exactly these commands, and the call equal to the previous one with ``changes`` applied."""
    call = start_observed(plan(default_ext="1005", **line_kw), "o", T0)
    expected = call
    for number, (seconds, event, commands, changes) in enumerate(script, 1):
        call, got = step(call, event, at(seconds))
        expected = replace(expected, **{"ignored": "", "warning": "", **changes})
        assert got == commands, f"step {number}: {got}"
        assert call == expected, f"step {number}"
    return call


def reg(user: int, phone: str = CLIENT, call_type: CallType = CallType.OUTGOING, line: str = LINE) -> CrmRegister:
    return CrmRegister("o.1", user, phone, call_type, line, T0, show=False)


OUTBOUND_START = {"direction": OUT, "call_type": CallType.OUTGOING, "ext": "1001", "number": CLIENT, "line": LINE}


def test_an_outbound_call_from_a_desk_phone_is_registered_shown_finished_with_talk_time_and_its_recording() -> None:
    play(
        [
            (
                0,
                ObservedStarted(OUT, CLIENT, ext="1001", line=LINE),
                [reg(1), CrmShow("o.1", (1,))],
                {**OUTBOUND_START, "crm_key": "o", "state": S.RINGING, "crm_leg": "o.1", "user_id": 1, "shown": (1,)},
            ),
            (1, ObservedRinging("1001"), [], {"ignored": "1001 rings already or the call is outbound"}),
            (4, ObservedAnswered(), [], {"state": S.TALKING, "talker": "1001", "answered_at": at(4)}),
            (
                12.4,
                ObservedEnded("ANSWER", 16, recording="out-1.wav"),
                [CrmFinish("o.1", 1, 8, "200")],
                {"state": S.WRAP_UP, "shown": (), "recording": "out-1.wav", "timer": at(42.4)},
            ),
            (13, ObservedRecording("other.wav"), [], {"ignored": "recording other.wav is not this call's"}),
            (
                14,
                ObservedRecording("out-1.wav"),
                [CrmAttachRecord("o.1", "out-1.wav")],
                {"state": S.DONE, "timer": None},
            ),
            (15, ObservedEnded(), [], {"ignored": "ObservedEnded has no meaning in state done"}),
        ]
    )


def run(*events: tuple[float, ObservedEvent], **line_kw: Any) -> tuple[Observed, list[Command]]:
    call = start_observed(plan(default_ext="1005", **line_kw), "o", T0)
    commands: list[Command] = []
    for seconds, event in events:
        call, more = step(call, event, at(seconds))
        commands += more
    return call, commands


def test_unanswered_outbound_calls_get_the_outbound_status() -> None:
    for ended, status in [
        (ObservedEnded("BUSY", 17), "486"),
        (ObservedEnded("CANCEL", 16), "603-S"),
        (ObservedEnded("CONGESTION", 0), "503"),  # a Local channel: the dial status wins over cause 0
        (ObservedEnded("", 20), "480"),
        (ObservedEnded("NOANSWER", 21), "304"),
    ]:
        call, commands = run((0, ObservedStarted(OUT, CLIENT, ext="1002")), (30, ended))
        assert commands[-1] == CrmFinish("o.1", 2, 0, status)
        assert call.state is S.DONE and call.deadline is None


def test_click_to_call_adopts_the_call_id_bitrix24_registered_and_never_registers_or_shows() -> None:
    call, commands = run(
        (0, ObservedStarted(OUT, CLIENT, ext="", adopt_call_id="externalCall.abc.1", user_id=11, crm_key="c2c")),
        (5, ObservedAnswered()),
        (65, ObservedEnded("ANSWER", 16)),
    )
    # the adopt keeps who clicked and the number: a restart's recovery carries the call on with them
    adopt = CrmAdopt("c2c.1", "externalCall.abc.1", user_id=11, phone=CLIENT)
    assert commands == [adopt, CrmFinish("c2c.1", 11, 60, "200")]
    assert call.adopted and call.state is S.DONE


def test_an_undialable_click_to_call_finishes_bitrix24s_call_at_once_as_404_with_the_reason() -> None:
    reason = "number 'нет' refused: 'н' is not a digit"
    call, commands = run(
        (0, ObservedStarted(OUT, "'нет'", ext="", adopt_call_id="externalCall.abc.1", user_id=11, crm_key="c2c")),
        (0, ObservedEnded("INVALIDARGS", failed_reason=reason)),
    )
    adopt = CrmAdopt("c2c.1", "externalCall.abc.1", user_id=11, phone="'нет'")
    assert commands == [adopt, CrmFinish("c2c.1", 11, 0, "404", reason)]
    assert call.state is S.DONE


def test_a_callback_is_registered_as_type_4() -> None:
    _, commands = run((0, ObservedStarted(OUT, CLIENT, ext="1003", call_type=CallType.CALLBACK)))
    assert commands == [reg(3, call_type=CallType.CALLBACK, line=""), CrmShow("o.1", (3,))]


def test_an_outbound_call_from_an_unknown_extension_is_not_mirrored() -> None:
    call, commands = run((0, ObservedStarted(OUT, CLIENT, ext="7777")), (3, ObservedEnded("ANSWER")))
    assert commands == [] and call.state is S.DONE and call.ignored
    call, _ = run((0, ObservedStarted(OUT, CLIENT, ext="7777")))
    assert call.warning == "extension '7777' is not an employee"


def test_a_monitor_only_inbound_call_follows_the_ringing_with_the_card_and_finishes_for_who_answered() -> None:
    inbound = {"direction": IN, "call_type": CallType.INCOMING, "number": CALLER, "line": LINE, "crm_key": "o"}
    play(
        [
            (
                0,
                ObservedStarted(IN, CALLER, line=LINE),
                [reg(5, CALLER, CallType.INCOMING)],
                {**inbound, "state": S.RINGING, "crm_leg": "o.1", "user_id": 5},
            ),
            (1, ObservedRinging("1001"), [CrmShow("o.1", (1,))], {"ringing": ("1001",), "shown": (1,)}),
            (2, ObservedRinging("1002"), [CrmShow("o.1", (2,))], {"ringing": ("1001", "1002"), "shown": (1, 2)}),
            (2.5, ObservedRinging("1002"), [], {"ignored": "1002 rings already or the call is outbound"}),
            (6, ObservedStoppedRinging("1001"), [CrmHide("o.1", (1,))], {"ringing": ("1002",), "shown": (2,)}),
            (6.5, ObservedStoppedRinging("1001"), [], {"ignored": "1001 is not ringing"}),
            (
                8,
                ObservedAnswered("1002"),
                [],
                {"state": S.TALKING, "ringing": (), "talker": "1002", "answered_at": at(8)},
            ),
            (9, ObservedRinging("1003"), [], {"ignored": "ObservedRinging has no meaning in state talking"}),
            (10, ObservedRecording("in.wav"), [], {"recording": "in.wav", "recording_ready": True}),
            (
                40,
                ObservedEnded("ANSWER", 16),
                [CrmFinish("o.1", 2, 32, "200"), CrmAttachRecord("o.1", "in.wav")],
                {"state": S.DONE, "shown": ()},
            ),
        ]
    )


def test_a_missed_monitor_only_call_is_304_for_the_line_owner_with_the_lines_notices() -> None:
    _, commands = run(
        (0, ObservedStarted(IN, CALLER, line=LINE)),
        (1, ObservedRinging("1001")),
        (20, ObservedEnded("NOANSWER", 16)),
        missed_task=True,
        missed_notify=True,
    )
    text = f"A call from {CALLER} to line Sales was not answered."
    assert commands[1:] == [
        CrmShow("o.1", (1,)),
        CrmHide("o.1", (1,)),
        CrmFinish("o.1", 5, 0, "304"),
        CrmMissedTask(5, f"Skipped incoming call from {CALLER}", f"{text} Called at 2026-03-10T10:00:00+00:00."),
        CrmNotify(5, text),
    ]


def test_a_monitor_only_line_outside_the_plan_registers_for_the_first_extension_that_rings_or_answers() -> None:
    call, commands = run(
        (0, ObservedStarted(IN, CALLER, line="74990000000")),
        (1, ObservedRinging("1003")),
        (9, ObservedEnded("", 16)),
    )
    assert commands == [
        reg(3, CALLER, CallType.INCOMING, "74990000000"),
        CrmShow("o.1", (3,)),
        CrmFinish("o.1", 3, 0, "304"),
    ]
    _, commands = run(
        (0, ObservedStarted(IN, CALLER, line="74990000000")),
        (3, ObservedAnswered("1004")),
        (13, ObservedEnded("ANSWER", 16, recording="x.wav")),
    )
    assert commands == [
        reg(4, CALLER, CallType.INCOMING, "74990000000"),
        CrmShow("o.1", (4,)),
        CrmFinish("o.1", 4, 10, "200"),
    ]
    call, commands = run((0, ObservedStarted(IN, CALLER, line="74990000000")), (9, ObservedEnded()))
    assert commands == [] and call.warning == "nobody owns this call in Bitrix24: not mirrored"


def test_a_recording_that_never_arrives_is_given_up() -> None:
    call, _ = run(
        (0, ObservedStarted(OUT, CLIENT, ext="1001")),
        (2, ObservedAnswered()),
        (9, ObservedEnded("ANSWER", 16, recording="r.wav")),
    )
    assert call.state is S.WRAP_UP and call.deadline == at(39)
    call, commands = step(call, TimerFired(), at(30))
    assert commands == [] and call.ignored == "no deadline has passed"
    call, commands = step(call, TimerFired(), at(39))
    assert commands == [] and call.state is S.DONE and call.warning == "recording r.wav not stored in time"
    call, _ = step(call, TimerFired(), at(50))
    assert call.ignored == "TimerFired has no meaning in state done"


def test_an_outbound_call_nobody_answered_gets_no_recording_of_its_ringback() -> None:
    call, commands = run(
        (0, ObservedStarted(OUT, CLIENT, ext="1001")),
        (1, ObservedRecording("ringback.wav")),
        (9, ObservedEnded("NOANSWER", 16, recording="ringback.wav")),
    )
    assert call.state is S.DONE
    assert not any(isinstance(c, CrmAttachRecord) for c in commands)
    assert commands[-1] == CrmFinish("o.1", 1, 0, "304")


# --- invariants --------------------------------------------------------------------------------------

events = st.one_of(
    st.builds(ObservedRinging, st.sampled_from(["1001", "1002", "9"])),
    st.builds(ObservedStoppedRinging, st.sampled_from(["1001", "1002", "9"])),
    st.builds(ObservedAnswered, st.sampled_from(["", "1001", "1002"])),
    st.builds(
        ObservedEnded,
        st.sampled_from(["", "ANSWER", "BUSY"]),
        st.sampled_from([None, 16, 0]),
        st.sampled_from(["", "r"]),
    ),
    st.builds(ObservedRecording, st.sampled_from(["r", "x"])),
    st.just(TimerFired()),
)
starts = st.builds(
    ObservedStarted,
    st.sampled_from([IN, OUT]),
    st.just(CLIENT),
    st.sampled_from(["", "1001", "9"]),
    st.sampled_from([LINE, "1"]),
    adopt_call_id=st.sampled_from(["", "externalCall.x"]),
    user_id=st.sampled_from([0, 11]),
)


@settings(max_examples=300, deadline=None)
@given(start=starts, sequence=st.lists(st.tuples(events, st.floats(0, 40)), max_size=12))
def test_observed_calls_finish_once_for_a_user_attach_after_finish_and_do_nothing_after_the_end(
    start: ObservedStarted, sequence: list[tuple[ObservedEvent, float]]
) -> None:
    call = start_observed(plan(default_ext="1005"), "o", T0)
    call, log = step(call, start, T0)
    clock = 0.0
    for event, wait in [*sequence, (ObservedEnded(), 1.0), (TimerFired(), 60.0)]:
        clock += wait
        before = call
        call, commands = step(call, event, at(clock))
        if before.state is S.DONE:
            assert commands == [] and replace(call, ignored="") == replace(before, ignored="")
        log += commands
    finishes = [c for c in log if isinstance(c, CrmFinish)]
    registered = [c for c in log if isinstance(c, CrmRegister | CrmAdopt)]
    assert len(finishes) == len(registered) <= 1
    assert all(f.user_id > 0 for f in finishes), "a finish without a user (Bitrix24 refuses it for good)"
    assert call.state is S.DONE
    for index, command in enumerate(log):
        if isinstance(command, CrmAttachRecord):
            assert any(isinstance(c, CrmFinish) for c in log[:index])
        if isinstance(command, CrmShow | CrmHide):
            assert not any(isinstance(c, CrmFinish) for c in log[:index]), "a card after the finish"
