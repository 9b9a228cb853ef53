"""Recorded AMI sessions of a real Asterisk 20 -> observed-call and availability events."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.domain.commands import CallType
from bridge.domain.events import (
    Direction,
    ObservedAnswered,
    ObservedEnded,
    ObservedRecording,
    ObservedRinging,
    ObservedStarted,
    ObservedStoppedRinging,
)
from bridge.pbx.events import BadInput, DeviceStateSeen, PbxEvent
from bridge.pbx.observe import AmiTranslator
from bridge.pbx.outcomes import EndpointTemplate
from tests.protocol.recorded import SCENARIOS, ami_messages


def replay(translator: AmiTranslator, scenario: str) -> list[tuple[float, PbxEvent]]:
    return [(t, event) for t, message in ami_messages(scenario) for event in translator.feed(message)]


def outbound_translator(device: str = "Local/{ext}@phones") -> AmiTranslator:
    return AmiTranslator(EndpointTemplate(device), outbound_contexts=("from-agents",), monitor_lines=())


def test_d_outbound_call_answered_after_4_s_talks_about_8_s_and_ends_with_cause_16() -> None:
    timed = replay(outbound_translator(), "d_outbound_dialplan")
    calls = [(t, e) for t, e in timed if not isinstance(e.event, DeviceStateSeen)]
    linkedid = "1795306119.20"
    assert [e for _, e in calls] == [
        PbxEvent(
            linkedid,
            ObservedStarted(
                direction=Direction.OUTBOUND,
                number="84951234567",
                ext="1001",
                crm_key=linkedid,
                call_type=CallType.OUTGOING,
                linkedid=linkedid,
            ),
            linkedid,
        ),
        PbxEvent(linkedid, ObservedAnswered(""), linkedid),
        PbxEvent(linkedid, ObservedEnded("ANSWER", 16, "out-1795306119.20"), linkedid),
        PbxEvent(linkedid, ObservedRecording("out-1795306119.20"), linkedid),
    ]
    started, answered, ended = calls[0][0], calls[1][0], calls[2][0]
    assert 3.5 <= answered - started <= 5.0, "the remote party answers after 4 s of ringing"
    assert 7.5 <= ended - answered <= 10.5, "then plays hello-world and hangs up 8 s later"


def test_d_device_states_of_the_phone_are_reported_by_extension() -> None:
    timed = replay(outbound_translator(), "d_outbound_dialplan")
    states = [e.event for _, e in timed if isinstance(e.event, DeviceStateSeen)]
    assert states[0] == DeviceStateSeen("1001", "INUSE")
    assert states[-1] == DeviceStateSeen("1001", "NOT_INUSE")
    assert {s.ext for s in states} == {"1001"}, "the trunk's Local device is nobody's phone"


def test_d_with_the_default_pjsip_template_the_caller_id_names_the_employee() -> None:
    timed = replay(outbound_translator("PJSIP/{ext}"), "d_outbound_dialplan")
    started = [e.event for _, e in timed if isinstance(e.event, ObservedStarted)]
    assert [s.ext for s in started] == ["1001"]


@pytest.mark.parametrize("scenario", SCENARIOS[:3])
def test_stasis_calls_are_not_observed_on_ami(scenario: str) -> None:
    translator = AmiTranslator(EndpointTemplate("Local/{ext}@agents"), ("from-agents",), ())
    events = [e.event for _, e in replay(translator, scenario)]
    assert events, "the agents' device states still come through"
    assert all(isinstance(e, DeviceStateSeen) for e in events), events
    assert translator.watched == {} and translator.channels == {}, "every channel of the session hung up"


def monitor_line_call() -> list[dict[str, Any]]:
    """A dialplan-routed inbound call on a monitor-only line: 1001 and 1002 ring, 1002 answers."""
    trunk = {"Channel": "PJSIP/trunk-00000001", "Uniqueid": "100.1", "Linkedid": "100.1", "Context": "from-trunk",
             "Exten": "74951112299", "CallerIDNum": "79160000001", "CallerIDName": "Client"}  # fmt: skip

    def agent(ext: str, n: int) -> dict[str, str]:
        return {"DestChannel": f"PJSIP/{ext}-0000000{n}", "DestUniqueid": f"100.{n}", "DestLinkedid": "100.1"}

    return [
        {"Event": "Newchannel", **trunk},
        {"Event": "Newchannel", "Channel": "PJSIP/1001-00000002", "Uniqueid": "100.2", "Linkedid": "100.1"},
        {"Event": "DialBegin", **trunk, **agent("1001", 2)},
        {"Event": "Newchannel", "Channel": "PJSIP/1002-00000003", "Uniqueid": "100.3", "Linkedid": "100.1"},
        {"Event": "DialBegin", **trunk, **agent("1002", 3)},
        {"Event": "DialEnd", **trunk, **agent("1002", 3), "DialStatus": "ANSWER"},
        {"Event": "DialEnd", **trunk, **agent("1001", 2), "DialStatus": "CANCEL"},
        {"Event": "Hangup", "Channel": "PJSIP/1001-00000002", "Uniqueid": "100.2", "Linkedid": "100.1", "Cause": "26"},
        {"Event": "Hangup", **trunk, "Cause": "16"},
        {"Event": "Hangup", "Channel": "PJSIP/1002-00000003", "Uniqueid": "100.3", "Linkedid": "100.1", "Cause": "16"},
    ]


def test_a_monitor_only_line_is_mirrored_ring_by_ring() -> None:
    translator = AmiTranslator(EndpointTemplate("PJSIP/{ext}"), ("from-agents",), ("74951112299",))
    events = [e.event for message in monitor_line_call() for e in translator.feed(message)]
    assert events == [
        ObservedStarted(
            direction=Direction.INBOUND,
            number="79160000001",
            line="74951112299",
            crm_key="100.1",
            call_type=CallType.INCOMING,
            linkedid="100.1",
        ),
        ObservedRinging("1001"),
        ObservedRinging("1002"),
        ObservedAnswered("1002"),
        ObservedStoppedRinging("1001"),
        ObservedEnded("ANSWER", 16, ""),
    ]


def test_a_monitor_line_call_created_before_its_caller_id_starts_once_a_snapshot_shows_the_number() -> None:
    """Seen on Asterisk 20.20.1: a call arriving on a Local channel has CallerIDNum <unknown> at Newchannel (its
    NewCallerid follows, and the bridge does not subscribe to it); the dialplan's next step carries the number."""
    messages = monitor_line_call()
    unknown = {**messages[0], "CallerIDNum": "<unknown>", "CallerIDName": "<unknown>"}
    step = {**messages[0], "Event": "Newexten", "Application": "Dial", "AppData": "PJSIP/1001&PJSIP/1002"}
    translator = AmiTranslator(EndpointTemplate("PJSIP/{ext}"), ("from-agents",), ("74951112299",))
    events = [e.event for message in [unknown, step, *messages[1:]] for e in translator.feed(message)]
    started = [e for e in events if isinstance(e, ObservedStarted)]
    assert [s.number for s in started] == ["79160000001"]


def test_a_monitor_line_caller_who_withholds_the_number_still_starts_at_the_first_ring() -> None:
    anonymous = [{**m, "CallerIDNum": "<unknown>"} if m.get("Channel") == "PJSIP/trunk-00000001" else m
                 for m in monitor_line_call()]  # fmt: skip
    translator = AmiTranslator(EndpointTemplate("PJSIP/{ext}"), ("from-agents",), ("74951112299",))
    events = [e.event for message in anonymous for e in translator.feed(message)]
    assert [type(e).__name__ for e in events][:2] == ["ObservedStarted", "ObservedRinging"]
    assert events[-1] == ObservedEnded("ANSWER", 16, "")


def test_other_lines_are_left_to_stasis() -> None:
    translator = AmiTranslator(EndpointTemplate("PJSIP/{ext}"), ("from-agents",), ("74950000000",))
    events = [e.event for message in monitor_line_call() for e in translator.feed(message)]
    assert events == []


def test_feature_codes_dialled_from_an_outbound_context_are_not_calls() -> None:
    translator = outbound_translator("PJSIP/{ext}")
    message = {"Event": "Newchannel", "Channel": "PJSIP/1001-00000009", "Uniqueid": "7.1", "Linkedid": "7.1",
               "Context": "from-agents", "Exten": "*8", "CallerIDNum": "1001"}  # fmt: skip
    assert translator.feed(message) == []
    assert translator.watched == {}


@pytest.mark.parametrize(
    "message",
    [
        {"Event": "Newchannel", "Channel": "PJSIP/1001-00000001", "Context": "from-agents"},
        {"Event": "Hangup", "Channel": "PJSIP/1001-00000001", "Uniqueid": "1.1", "Linkedid": "1.1", "Cause": "x"},
        {"Event": "DeviceStateChange", "Device": "PJSIP/1001", "State": "DANCING"},
        {
            "Event": "VarSet",
            "Channel": "Local/1001@phones-00000001;1",
            "Uniqueid": "1.1",
            "Variable": "MIXMONITOR_FILENAME",
            "Value": "/var/spool/asterisk/monitor/x.wav",
        },
        {"Event": "DeviceStateChange", "Device": ["PJSIP/1001", "PJSIP/1002"], "State": "INUSE"},
        {"Event": "DialEnd", "Linkedid": "1795306119.20", "DestChannel": "PJSIP/1-00000001"},
    ],
)
def test_malformed_ami_events_are_bad_input_and_change_nothing(message: dict[str, Any]) -> None:
    translator = outbound_translator()
    messages = ami_messages("d_outbound_dialplan")
    for _, earlier in messages[:40]:
        translator.feed(earlier)
    assert translator.watched, "the outbound call is being watched"
    before = (repr(translator.watched), repr(translator.channels))
    events = translator.feed(message)
    assert len(events) == 1 and isinstance(events[0].event, BadInput), events
    assert (repr(translator.watched), repr(translator.channels)) == before


GLOBAL_VARSET = {"Event": "VarSet", "Privilege": "dialplan,all", "Channel": "none", "Uniqueid": "none",
                 "Variable": "RECORD_CALLS", "Value": "yes"}  # fmt: skip
"""What Asterisk 20 sends for ``Set(GLOBAL(RECORD_CALLS)=yes)`` or AMI ``Setvar`` without a channel."""


@pytest.mark.parametrize(
    "message",
    [
        GLOBAL_VARSET,
        {**GLOBAL_VARSET, "Variable": "MIXMONITOR_FILENAME", "Value": "/tmp/global.wav"},
        {
            "Event": "VarSet",
            "Channel": "PJSIP/1001-00000001",
            "Uniqueid": "1.1",
            "Variable": "DIALSTATUS",
            "Value": "ANSWER",
        },  # no Linkedid: a variable the bridge does not read needs none
        {"Event": "FullyBooted", "Privilege": "system,all", "Uptime": "23", "Status": "Fully Booted"},
        {
            "Event": "Registry",
            "ChannelType": "PJSIP",
            "Username": "sip:trunk@10.0.0.1",
            "Domain": "sip:10.0.0.1",
            "Status": "Registered",
        },
        {"Event": "PeerStatus", "ChannelType": "PJSIP", "Peer": "PJSIP/1001", "PeerStatus": "Reachable"},
        {"Event": "RTCPSent", "Channel": "PJSIP/1001-00000001", "SSRC": "0x1"},
        {"Event": "HangupRequest", "Channel": "PJSIP/1001-00000001"},  # no Uniqueid or Linkedid: not read
        {"Event": "DeviceStateChange", "Device": "Queue:office_avail", "State": "NOT_INUSE"},
        {"Event": "DeviceStateChange", "Device": "Custom:DND1001", "State": "BUSY"},
    ],
)
def test_events_the_bridge_does_not_use_are_ordinary_traffic(message: dict[str, Any]) -> None:
    translator = outbound_translator()
    for _, earlier in ami_messages("d_outbound_dialplan")[:40]:
        translator.feed(earlier)
    before = (repr(translator.watched), repr(translator.channels), repr(translator.filenames))
    assert translator.feed(message) == []
    assert (repr(translator.watched), repr(translator.channels), repr(translator.filenames)) == before


def test_a_global_varset_in_a_recorded_session_changes_no_outcome() -> None:
    plain = [e for _, e in replay(outbound_translator(), "d_outbound_dialplan")]
    translator = outbound_translator()
    mixed = []
    for _, message in ami_messages("d_outbound_dialplan"):
        mixed += translator.feed(GLOBAL_VARSET) + translator.feed(message)
    assert mixed == plain


def test_resync_ends_calls_that_vanished_and_picks_up_calls_that_started_meanwhile() -> None:
    translator = outbound_translator("PJSIP/{ext}")
    translator.feed({"Event": "Newchannel", "Channel": "PJSIP/1001-00000001", "Uniqueid": "5.1", "Linkedid": "5.1",
                     "Context": "from-agents", "Exten": "84950000001", "CallerIDNum": "1001"})  # fmt: skip
    live = [{"Event": "CoreShowChannel", "Channel": "PJSIP/1002-00000002", "Uniqueid": "6.1", "Linkedid": "6.1",
             "Context": "from-agents", "Exten": "84950000002", "CallerIDNum": "1002", "ChannelStateDesc": "Up",
             "Application": "Dial", "ApplicationData": "PJSIP/84950000002@trunk"}]  # fmt: skip
    devices = [{"Event": "DeviceStateChange", "Device": "PJSIP/1002", "State": "INUSE"},
               {"Event": "DeviceStateChange", "Device": "PJSIP/1003", "State": "UNAVAILABLE"}]  # fmt: skip
    events = translator.resync(live, devices)
    kinds = [type(e.event).__name__ for e in events]
    assert kinds == ["ObservedEnded", "ObservedStarted", "Resynced"]
    assert events[0].call == "5.1" and events[1].call == "6.1"
    resynced = events[-1].event
    assert resynced.channels[0].id == "6.1" and resynced.channels[0].app == "Dial"  # type: ignore[union-attr]
    assert resynced.devices == {"1002": "INUSE", "1003": "UNAVAILABLE"}  # type: ignore[union-attr]
