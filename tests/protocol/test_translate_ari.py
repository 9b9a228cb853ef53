"""Recorded ARI WebSocket frames of a real Asterisk 20 -> the domain events the core gets."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.domain.commands import CallType
from bridge.domain.events import (
    CallerHungUp,
    CallStarted,
    DtmfReceived,
    Intercepted,
    LegAnswered,
    LegEnded,
    LegOutcome,
    PromptFinished,
    RecordingReady,
    Transferred,
)
from bridge.pbx.events import BadInput, DeviceStateSeen, PbxEvent, Resynced, StasisEntered
from bridge.pbx.outcomes import EndpointTemplate
from bridge.pbx.translate import AriTranslator
from tests.protocol.recorded import ari_frames, originated_channels, playback_ids


def caller_channel(scenario: str) -> str:
    first = json.loads(ari_frames(scenario)[0])
    assert first["type"] == "StasisStart"
    return str(first["channel"]["id"])


def replay(scenario: str, translator: AriTranslator | None = None) -> tuple[AriTranslator, list[PbxEvent]]:
    """Feed a recording as the ARI link does: the legs and playbacks the app started are registered first."""
    translator = translator or AriTranslator(EndpointTemplate("Local/{ext}@agents"))
    call = caller_channel(scenario)
    for leg in originated_channels(scenario):
        translator.expect_leg(leg, call, local=True)
    for n, playback in enumerate(playback_ids(scenario)):
        translator.expect_playback(playback, call, f"prompt-{n}")
    events: list[PbxEvent] = []
    for frame in ari_frames(scenario):
        events += translator.feed_text(frame)
    return translator, events


def test_a_no_answer_then_the_next_agent_answers() -> None:
    call = caller_channel("a_inbound_noanswer_then_answer")
    leg_1002, leg_1001 = originated_channels("a_inbound_noanswer_then_answer")
    translator, events = replay("a_inbound_noanswer_then_answer")
    assert events == [
        PbxEvent(call, CallStarted(line="74951112233", caller="79161234567", caller_name="Иван Петров")),
        PbxEvent(call, LegEnded(leg_1002, LegOutcome.NO_ANSWER)),
        PbxEvent(call, LegAnswered(leg_1001)),
        PbxEvent(call, CallerHungUp(16)),
        PbxEvent(call, LegEnded(leg_1001, LegOutcome.HANGUP)),
    ]
    assert translator.callers == {} and translator.legs == {}, "nothing is left of an ended call"


def test_b_busy_then_unavailable_then_the_caller_hangs_up() -> None:
    call = caller_channel("b_inbound_busy_unavailable_missed")
    leg_1003, leg_1004 = originated_channels("b_inbound_busy_unavailable_missed")
    _, events = replay("b_inbound_busy_unavailable_missed")
    assert [e.event for e in events] == [
        CallStarted(line="74951112233", caller="74959876543", caller_name="ООО Ромашка"),
        LegEnded(leg_1003, LegOutcome.BUSY),
        LegEnded(leg_1004, LegOutcome.UNAVAILABLE),
        CallerHungUp(16),
    ]
    assert {e.call for e in events} == {call}


def test_c_the_caller_presses_2_after_the_greeting() -> None:
    call = caller_channel("c_inbound_dtmf")
    (leg,) = originated_channels("c_inbound_dtmf")
    _, events = replay("c_inbound_dtmf")
    assert [e.event for e in events] == [
        CallStarted(line="74951112244", caller="79161234567", caller_name="Иван Петров"),
        PromptFinished("prompt-0"),
        DtmfReceived("2"),
        LegAnswered(leg),
        CallerHungUp(16),
        LegEnded(leg, LegOutcome.HANGUP),
    ]
    assert {e.call for e in events} == {call}


def test_d_an_outbound_dialplan_call_has_no_ari_traffic() -> None:
    assert ari_frames("d_outbound_dialplan") == []


def test_busy_comes_from_the_dial_status_not_from_the_cause_0_of_the_half_we_hold() -> None:
    frames = [json.loads(f) for f in ari_frames("b_inbound_busy_unavailable_missed")]
    leg_1003 = originated_channels("b_inbound_busy_unavailable_missed")[0]
    destroyed = [f for f in frames if f["type"] == "ChannelDestroyed" and f["channel"]["id"] == leg_1003]
    assert destroyed[0]["cause"] == 0, "the recording shows the trap: cause 0 on the ;1 half"
    _, events = replay("b_inbound_busy_unavailable_missed")
    assert LegEnded(leg_1003, LegOutcome.BUSY) in [e.event for e in events]


def leg_frames(dialstatus: str | None, cause: int, name: str) -> tuple[str, list[dict[str, Any]]]:
    """The recorded busy leg of scenario b with another final Dial status / cause / channel name."""
    frames = [json.loads(f) for f in ari_frames("b_inbound_busy_unavailable_missed")]
    leg = originated_channels("b_inbound_busy_unavailable_missed")[0]
    out = []
    for frame in frames:
        channel = frame.get("peer") or frame.get("channel") or {}
        if channel.get("id") != leg or frame["type"] not in ("Dial", "ChannelDestroyed"):
            continue
        frame = copy.deepcopy(frame)
        (frame.get("peer") or frame["channel"])["name"] = name
        if frame["type"] == "Dial" and frame["dialstatus"]:
            if dialstatus is None:
                continue
            frame["dialstatus"] = dialstatus
        if frame["type"] == "ChannelDestroyed":
            frame["cause"] = cause
        out.append(frame)
    return leg, out


@pytest.mark.parametrize(
    ("dialstatus", "cause", "outcome"),
    [
        ("BUSY", 0, LegOutcome.BUSY),
        ("CHANUNAVAIL", 20, LegOutcome.UNAVAILABLE),
        ("CONGESTION", 0, LegOutcome.CONGESTION),
        ("NOANSWER", 21, LegOutcome.REJECTED),
        ("NOANSWER", 19, LegOutcome.NO_ANSWER),
        (None, 19, LegOutcome.NO_ANSWER),
        (None, 0, LegOutcome.NO_ANSWER),
    ],
)
def test_local_legs_take_their_outcome_from_the_dial_status(
    dialstatus: str | None, cause: int, outcome: LegOutcome
) -> None:
    translator = AriTranslator(EndpointTemplate("Local/{ext}@agents"))
    leg, frames = leg_frames(dialstatus, cause, "Local/1003@agents-00000006;1")
    translator.expect_leg(leg, "call-1")
    events = [e for frame in frames for e in translator.feed(frame)]
    assert [e.event for e in events] == [LegEnded(leg, outcome)]


@pytest.mark.parametrize(
    ("cause", "outcome"),
    [
        (17, LegOutcome.BUSY),
        (19, LegOutcome.NO_ANSWER),
        (18, LegOutcome.NO_ANSWER),
        (20, LegOutcome.UNAVAILABLE),
        (21, LegOutcome.REJECTED),
        (34, LegOutcome.CONGESTION),
        (42, LegOutcome.CONGESTION),
        (16, LegOutcome.NO_ANSWER),
        (38, LegOutcome.FAILED),
    ],
)
def test_single_channel_legs_take_their_outcome_from_the_hangup_cause(cause: int, outcome: LegOutcome) -> None:
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"))
    leg, frames = leg_frames(None, cause, "PJSIP/1003-00000006")
    translator.expect_leg(leg, "call-1")
    events = [e for frame in frames for e in translator.feed(frame)]
    assert [e.event for e in events] == [LegEnded(leg, outcome)]


STRANGE_FRAMES: list[object] = [
    "not json at all {",
    "[1, 2, 3]",
    '"a string"',
    "{}",
    '{"type": 5}',
    '{"type": "StasisStart"}',
    '{"type": "StasisStart", "channel": "1795306061.1", "args": ["inbound", "1"]}',
    '{"type": "StasisStart", "channel": {"id": 7}, "args": ["inbound", "1"]}',
    '{"type": "StasisStart", "channel": {"id": "x"}, "args": "inbound"}',
    '{"type": "StasisStart", "channel": {"id": "x"}, "args": ["inbound"]}',
    '{"type": "ChannelDestroyed", "channel": {"id": "1795306061.4"}, "cause": "many"}',
    '{"type": "ChannelDtmfReceived", "channel": {"id": "1795306061.1"}, "digit": "22"}',
    '{"type": "Dial", "dialstatus": "BUSY"}',
    '{"type": "DeviceStateChanged", "device_state": {"name": "PJSIP/1001", "state": "SLEEPY"}}',
    b"\xff\xfe\x00",
]


@pytest.mark.parametrize("frame", STRANGE_FRAMES)
def test_strange_frames_are_bad_input_and_change_nothing(frame: str | bytes) -> None:
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"))
    frames = ari_frames("a_inbound_noanswer_then_answer")
    translator.expect_leg("1795306061.4", "1795306061.1", local=True)
    translator.feed_text(frames[0])
    before = (copy.deepcopy(translator.callers), copy.deepcopy(translator.legs))
    events = translator.feed_text(frame)
    assert len(events) == 1 and isinstance(events[0].event, BadInput), events
    assert (translator.callers, translator.legs) == before


def test_unknown_event_types_and_foreign_channels_give_nothing() -> None:
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"))
    assert translator.feed({"type": "SomethingNew", "x": 1}) == []
    assert translator.feed({"type": "ChannelDestroyed", "channel": {"id": "not-ours"}, "cause": 16}) == []
    assert translator.feed({"type": "ChannelDtmfReceived", "channel": {"id": "not-ours"}, "digit": "5"}) == []


def channel(cid: str, name: str = "PJSIP/1001-00000001", number: str = "79161234567") -> dict[str, Any]:
    return {"id": cid, "name": name, "state": "Up", "caller": {"name": "", "number": number}}


def inbound_call(translator: AriTranslator, cid: str = "c.1") -> None:
    translator.feed({"type": "StasisStart", "args": ["inbound", "74951112233"], "channel": channel(cid)})


def test_stasis_arguments_decide_what_an_entry_is() -> None:
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"))
    intercept = translator.feed({"type": "StasisStart", "args": ["intercept", "1002"], "channel": channel("i.1")})
    other = translator.feed({"type": "StasisStart", "args": ["click2call", "7916"], "channel": channel("k.1")})
    agent = translator.feed({"type": "StasisStart", "args": ["agent", "c.9", "c.9-leg1"], "channel": channel("x")})
    assert intercept == [PbxEvent(None, Intercepted(ext="1002", leg="i.1"))]
    assert other == [PbxEvent(None, StasisEntered("k.1", ("click2call", "7916"), "79161234567", "",
                                                  "PJSIP/1001-00000001"))]  # fmt: skip
    assert agent == [PbxEvent("c.9", LegAnswered("x"))], "a leg we never registered names its call in the args"


def test_device_states_of_agents_are_reported_by_extension() -> None:
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"))
    changed = translator.feed({"type": "DeviceStateChanged", "device_state": {"name": "PJSIP/1001", "state": "INUSE"}})
    foreign = translator.feed({"type": "DeviceStateChanged", "device_state": {"name": "Queue:x", "state": "INUSE"}})
    assert changed == [PbxEvent(None, DeviceStateSeen("1001", "INUSE"))]
    assert foreign == []


def test_recordings_we_asked_for_come_back_ready() -> None:
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"))
    inbound_call(translator)
    translator.expect_recording("c.1-talk", "c.1")
    done = {"type": "RecordingFinished", "recording": {"name": "c.1-talk", "format": "wav", "duration": 12}}
    assert translator.feed(done) == [PbxEvent("c.1", RecordingReady("c.1-talk", 12.0))]
    assert translator.feed(done) == [], "reported once"


def test_a_call_is_occupied_while_a_prompt_or_recording_of_it_may_be_under_way() -> None:
    """What keeps a call's queued operations off the events socket: its prompts and recordings, until they end."""
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"))
    inbound_call(translator)
    translator.expect_playback("c.1-1", "c.1", "greeting")
    translator.expect_playback("c.1-2", "c.1", "queue")
    translator.expect_recording("c.1-talk", "c.1")
    assert translator.occupied("c.1") and not translator.occupied("c.1-leg1")
    translator.feed({"type": "PlaybackFinished", "playback": {"id": "c.1-1", "state": "done"}})
    translator.forget_playback("c.1-2")
    assert translator.occupied("c.1"), "the recording goes on"
    translator.feed({"type": "RecordingFinished", "recording": {"name": "c.1-talk", "format": "wav"}})
    assert not translator.occupied("c.1")
    translator.expect_playback("c.1-3", "c.1", "bye")
    translator.expect_playback("c.1-3", "c.1", "bye")  # the same playback twice counts once
    translator.forget_playback("c.1-3")
    assert not translator.occupied("c.1")


def test_a_forgotten_call_leaves_nothing_behind() -> None:
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"))
    inbound_call(translator)
    translator.expect_leg("c.1-leg1", "c.1")
    translator.expect_playback("c.1-1", "c.1", "greeting")
    translator.expect_recording("c.1-talk", "c.1")
    translator.expect_recording("c.2-talk", "c.2")
    translator.forget_call("c.1")
    assert not translator.occupied("c.1") and translator.occupied("c.2")
    assert (translator.callers, translator.legs, translator.playbacks) == ({}, {}, {})
    assert translator.recordings == {"c.2-talk": "c.2"}
    done = {"type": "RecordingFinished", "recording": {"name": "c.1-talk", "format": "wav"}}
    assert translator.feed(done) == []


def test_transfers_are_reported_best_effort() -> None:
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"))
    inbound_call(translator)
    translator.expect_leg("c.1-leg1", "c.1", answered=True)
    blind = {"type": "BridgeBlindTransfer", "result": "Success", "exten": "1003", "channel": channel("c.1-leg1"),
             "transferee": channel("c.1")}  # fmt: skip
    external = {**blind, "exten": "84951234567"}
    failed = {**blind, "result": "Fail"}
    attended = {"type": "BridgeAttendedTransfer", "result": "Success", "transferer_first_leg": channel("c.1-leg1"),
                "transferee": channel("c.1"), "transfer_target": channel("t.1", "PJSIP/1004-00000009")}  # fmt: skip
    assert translator.feed(blind) == [PbxEvent("c.1", Transferred(leg="", ext="1003"))]
    assert translator.feed(external) == [PbxEvent("c.1", Transferred(leg="", number="84951234567"))]
    assert translator.feed(failed) == []
    assert translator.feed(attended) == [PbxEvent("c.1", Transferred(leg="t.1", ext="1004", attended=True))]
    assert translator.legs["t.1"].answered, "the new party's hang-up will be reported"


def test_resync_reports_what_ended_while_away_then_the_live_channels() -> None:
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"))
    inbound_call(translator, "c.1")
    inbound_call(translator, "c.2")
    translator.expect_leg("c.1-leg1", "c.1")
    translator.confirm("c.1-leg1")  # its originate was answered
    translator.expect_leg("c.2-leg1", "c.2", answered=True)
    lost = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    events = translator.resync([channel("c.1"), channel("c.2-leg1"), {"id": 5}], lost_at=lost)
    assert [e.event for e in events[:-1]] == [
        BadInput("channel list: id missing or not a string"),
        LegEnded("c.1-leg1", LegOutcome.NO_ANSWER),
        CallerHungUp(16),
    ]
    assert events[1].call == "c.1" and events[2].call == "c.2"
    assert events[1].at == events[2].at == lost, "what ended did so after the link was lost"
    resynced = events[-1].event
    assert isinstance(resynced, Resynced) and [c.id for c in resynced.channels] == ["c.1", "c.2-leg1"]
    assert resynced.lost_at == lost
    assert set(translator.callers) == {"c.1"} and set(translator.legs) == {"c.2-leg1"}


def test_a_resync_leaves_a_leg_whose_originate_the_pbx_had_not_answered_before_the_list() -> None:
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"))
    inbound_call(translator, "c.1")
    translator.expect_leg("c.1-leg1", "c.1")  # RingAgent under way: the originate is not answered yet
    translator.expect_leg("c.1-leg2", "c.1")
    translator.confirm("c.1-leg2")
    before = translator.confirmed_legs()
    translator.confirm("c.1-leg1")  # answered after the channel list was asked for: the list may not have it
    events = translator.resync([channel("c.1")], confirmed=before)
    assert [e.event for e in events[:-1]] == [LegEnded("c.1-leg2", LegOutcome.NO_ANSWER)]
    assert "c.1-leg1" in translator.legs, "a leg the PBX may not have known yet is not declared gone"
    dial = {"type": "Dial", "dialstatus": "RINGING", "peer": channel("c.1-leg3")}
    translator.expect_leg("c.1-leg3", "c.1")
    translator.feed(dial)
    assert "c.1-leg3" in translator.confirmed_legs(), "an event naming the leg shows the PBX has it"


def in_stasis(cid: str, app_data: str, number: str = "79161234567") -> dict[str, Any]:
    return {**channel(cid, number=number), "linkedid": cid, "dialplan": {"app_name": "Stasis", "app_data": app_data}}


def test_a_resync_starts_a_caller_in_our_application_whose_stasis_start_was_lost() -> None:
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"), "b24bridge")
    inbound_call(translator, "c.1")
    listed = [
        in_stasis("c.1", "b24bridge,inbound,74951112233"),  # known already
        in_stasis("c.2", "b24bridge,inbound,74951112266", number="79990000001"),  # its StasisStart was lost
        in_stasis("o.1", "otherapp,inbound,74951112233"),  # another application's
        in_stasis("a.1", "b24bridge,agent,c.9,c.9-leg1"),  # not a caller
        in_stasis("b.1", "b24bridge,inbound,"),  # no DID
        {**channel("d.1"), "dialplan": {"app_name": "Dial", "app_data": "b24bridge,inbound,1"}},
    ]
    events = translator.resync(listed)
    started = CallStarted(line="74951112266", caller="79990000001", linkedid="c.2")
    assert events[:-1] == [PbxEvent("c.2", started, "c.2")]
    assert set(translator.callers) == {"c.1", "c.2"}, "its later events are routed to it"
    gone = translator.feed({"type": "StasisEnd", "channel": channel("c.2")})
    assert gone == [PbxEvent("c.2", CallerHungUp(16), "c.2")]
    assert AriTranslator(EndpointTemplate("PJSIP/{ext}")).resync(listed)[:-1] == [], "no application: none"


def test_a_callback_the_bridge_placed_is_the_clients_type_4_call_even_for_a_process_that_did_not_place_it() -> None:
    """The client's leg carries the line's caller ID; its number rides in the arguments, so a daemon restarted while
    the client's phone rang still mirrors the callback as theirs. No other channel can claim to be one."""
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"), "b24bridge")
    args = ["inbound", "74951112233", "callback", "+79260000003"]
    ours = translator.feed({"type": "StasisStart", "args": args, "channel": channel("cb-6b16-1", number="74951112233")})
    forged = translator.feed({"type": "StasisStart", "args": args, "channel": channel("1796606046.7")})
    bad = ["inbound", "74951112233", "callback", "79260000003&PJSIP/x"]
    odd = translator.feed({"type": "StasisStart", "args": bad, "channel": channel("cb-6b16-2", number="74951112233")})
    callback = CallStarted(line="74951112233", caller="+79260000003", linkedid="", call_type=CallType.CALLBACK)
    assert ours == [PbxEvent("cb-6b16-1", callback, "")]
    assert forged == [PbxEvent("1796606046.7", CallStarted(line="74951112233", caller="79161234567"), "")]
    assert odd == [PbxEvent("cb-6b16-2", CallStarted(line="74951112233", caller="74951112233"), "")]
    listed = [in_stasis("cb-6b16-3", "b24bridge,inbound,74951112233,callback,+79260000004", number="74951112233")]
    (found, _resynced) = AriTranslator(EndpointTemplate("PJSIP/{ext}"), "b24bridge").resync(listed)
    assert found.event == replace(callback, caller="+79260000004", linkedid="cb-6b16-3")


def test_a_blind_transfers_replacement_channel_is_a_leg_that_answers_with_its_dial_status() -> None:
    translator = AriTranslator(EndpointTemplate("PJSIP/{ext}"))
    inbound_call(translator)
    translator.expect_leg("c.1-leg1", "c.1", answered=True)
    replacement = channel("r.1", "Local/1003@from-agents-00000004;1")
    blind = {"type": "BridgeBlindTransfer", "result": "Success", "exten": "1003", "channel": channel("c.1-leg1"),
             "transferee": channel("c.1"), "replace_channel": replacement}  # fmt: skip
    entered = {"type": "StasisStart", "args": [], "channel": replacement, "replace_channel": channel("c.1-leg1")}
    ringing = {"type": "Dial", "dialstatus": "RINGING", "peer": replacement}
    answered = {"type": "Dial", "dialstatus": "ANSWER", "peer": replacement}
    assert translator.feed(blind) == [PbxEvent("c.1", Transferred(leg="r.1", ext="1003"))]
    assert translator.feed(entered) == [], "not a StasisEntered for the daemon: it is our leg"
    assert translator.feed(ringing) == []
    assert translator.feed(answered) == [PbxEvent("c.1", LegAnswered("r.1"))]
    gone = {"type": "ChannelDestroyed", "cause": 16, "channel": replacement}
    assert translator.feed(gone) == [PbxEvent("c.1", LegEnded("r.1", LegOutcome.HANGUP))]
