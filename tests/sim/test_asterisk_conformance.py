"""Conformance with the recordings of real Asterisk 20 traffic (tests/fixtures/transcripts).

Each test drives the simulator exactly as the recorded session did (the AMI Originate that
places the call, then the ARI REST calls of ``.ari-rest.txt`` in reaction to the same events),
with the recorded delays scaled down, and compares what came out with what was recorded:

* ARI: the same event types in the same order, with the same key fields (state, channel name
  pattern, args, dialstatus, cause, cause_txt, soft, digit, variable, bridge size). Left out
  on both sides: ``ChannelDialplan`` and the robots' own variables (their dialplans differ).
* AMI: per channel, the same sequence of channel events (Newchannel, Newstate, Dial*, Bridge*,
  HangupRequest, SoftHangupRequest, Hangup, DTMF*, MixMonitorStart) with the same
  ChannelStateDesc, DialStatus, Cause and Cause-txt; and the same bridge and originate events.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.sim.asterisk import Answer, AsteriskSimulator, Busy, NeverAnswer, Unregistered
from tests.eventually import eventually
from tests.sim.asterisk_clients import AmiWire, AriWire, as_dict, parse_frames

TRANSCRIPTS = Path(__file__).parent.parent / "fixtures" / "transcripts"
ROBOT_VARIABLES = {"RING", "TALK", "LOCAL(ARGC)", "PLAYBACKSTATUS", "AGENT_TALK_SECS"}
AMI_CHANNEL_EVENTS = {
    "Newchannel", "Newstate", "DialBegin", "DialState", "DialEnd", "BridgeEnter", "BridgeLeave",
    "HangupRequest", "SoftHangupRequest", "Hangup", "DTMFBegin", "DTMFEnd", "MixMonitorStart",
}  # fmt: skip
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
NAME_COUNTER = re.compile(r"-[0-9a-f]{8}(;[12])?$")


def pattern(name: str) -> str:
    """``Local/1002@agents-00000002;1`` -> ``Local/1002@agents-N;1`` (counters differ run to run)."""
    return NAME_COUNTER.sub(lambda m: "-N" + (m.group(1) or ""), name)


def normalize_text(value: str) -> str:
    return ",".join(pattern(part) for part in UUID.sub("<bridge>", value).split(","))


def ari_key(event: dict[str, Any]) -> tuple[Any, ...] | None:
    kind = event["type"]
    if kind == "ChannelDialplan":
        return None
    if kind == "ChannelVarset" and event["variable"] in ROBOT_VARIABLES:
        return None
    channel = event.get("channel") or event.get("peer") or {}
    fields: dict[str, Any] = {}
    for key in ("dialstatus", "dialstring", "cause", "cause_txt", "soft", "digit", "duration_ms", "variable"):
        if key in event:
            fields[key] = event[key]
    if "value" in event:
        fields["value"] = normalize_text(event["value"])
    if "args" in event:
        fields["args"] = [normalize_text(a) for a in event["args"]]
    if "bridge" in event:
        fields["bridge_size"] = len(event["bridge"]["channels"])
    if "playback" in event:
        fields["playback"] = (event["playback"]["media_uri"], event["playback"]["state"])
    return (kind, pattern(channel.get("name", "")), channel.get("state", ""), tuple(sorted(fields.items())))


TEARDOWN = ("ChannelHangupRequest", "ChannelDestroyed")


def ari_keys(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Event keys in order, except that within a run of hangup requests and destroys only each
    channel's own order counts: Asterisk tears the two halves of a Local pair down on two
    threads, and recordings a and c show both interleavings."""
    keys: list[tuple[Any, ...]] = []
    run: dict[str, list[tuple[Any, ...]]] = {}
    for key in (ari_key(e) for e in events):
        if key is None:
            continue
        if key[0] in TEARDOWN:
            run.setdefault(key[1], []).append(key)
            continue
        if run:
            keys.append(("teardown", tuple(sorted((name, tuple(seq)) for name, seq in run.items()))))
            run = {}
        keys.append(key)
    if run:
        keys.append(("teardown", tuple(sorted((name, tuple(seq)) for name, seq in run.items()))))
    return keys


def recorded_ari(scenario: str) -> list[dict[str, Any]]:
    path = TRANSCRIPTS / f"{scenario}.ari.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def recorded_ami(scenario: str) -> list[dict[str, str]]:
    data = (TRANSCRIPTS / f"{scenario}.ami.txt").read_bytes()
    return [as_dict(frame) for frame in parse_frames(data)]


def ami_by_channel(events: list[dict[str, str]]) -> dict[str, list[tuple[str, ...]]]:
    """Per channel (name pattern): its channel events with their key headers."""
    found: dict[str, list[tuple[str, ...]]] = {}
    for event in events:
        kind = event.get("Event")
        if kind not in AMI_CHANNEL_EVENTS:
            continue
        for prefix in ("", "Dest"):
            name = event.get(f"{prefix}Channel")
            if name is None:
                continue
            role = "dest" if prefix else "self"
            key = (
                kind,
                role,
                event.get(f"{prefix}ChannelStateDesc", ""),
                event.get("DialStatus", "") if kind.startswith("Dial") else "",
                event.get("Cause", ""),
                event.get("Cause-txt", ""),
                event.get("Digit", ""),
            )
            found.setdefault(pattern(name), []).append(key)
    return found


def ami_globals(events: list[dict[str, str]]) -> dict[str, list[tuple[str, ...]]]:
    """Bridge life cycles in order, originate outcomes, Local pairs (their relative order
    with channel events races on a real Asterisk too)."""
    return {
        "bridges": [
            (e["Event"], e["BridgeType"]) for e in events if e.get("Event") in ("BridgeCreate", "BridgeDestroy")
        ],
        "originates": [(e["Response"], e["Reason"]) for e in events if e.get("Event") == "OriginateResponse"],
        "local_pairs": [(e["Context"], e["Exten"]) for e in events if e.get("Event") == "LocalBridge"],
    }


def call_events(events: list[dict[str, str]]) -> list[dict[str, str]]:
    """The AMI events after login (FullyBooted/SuccessfulAuth are checked elsewhere)."""
    return [e for e in events if e.get("Event") not in (None, "FullyBooted", "SuccessfulAuth")]


class Harness:
    def __init__(self, sim: AsteriskSimulator, ari: AriWire, ami: AmiWire) -> None:
        self.sim, self.ari, self.ami = sim, ari, ami

    async def originate_caller(self, did: str, caller_id: str, variables: str) -> None:
        response = await self.ami.action(
            "Originate",
            Channel=f"Local/{did}@from-trunk",
            Context="callers",
            Exten="s",
            Priority="1",
            CallerID=caller_id,
            Variable=variables,
            Async="true",
        )
        assert response["Response"] == "Success"

    async def answer_into_bridge(self, moh: bool) -> tuple[str, str]:
        start = await self.ari.wait_for("StasisStart", args=["inbound", "74951112233"])
        caller_id = start["channel"]["id"]
        assert (await self.ari.call("POST", f"/channels/{caller_id}/answer"))[0] == 204
        status, bridge = await self.ari.call("POST", "/bridges", {"type": "mixing", "name": f"call-{caller_id}"})
        assert status == 200
        await self.ari.call("POST", f"/bridges/{bridge['id']}/addChannel", {"channel": caller_id})
        if moh:
            await self.ari.call("POST", f"/bridges/{bridge['id']}/moh", {"mohClass": "default"})
        return caller_id, bridge["id"]

    async def originate_agent(
        self, ext: str, bridge_id: str, caller_id: str, ring_seconds: str, body: Any = None
    ) -> dict[str, Any]:
        params = {
            "endpoint": f"Local/{ext}@agents",
            "app": "b24bridge",
            "appArgs": f"agent,{bridge_id},{ext}",
            "callerId": caller_id,
            "timeout": ring_seconds,
        }
        status, channel = await self.ari.call("POST", "/channels", params, body)
        assert status == 200, channel
        return dict(channel)

    def ami_events(self) -> list[dict[str, str]]:
        return call_events(self.ami.events())


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with AsteriskSimulator(media_seconds=0.1) as sim:
        ami = await AmiWire.connect(sim.ami_host, sim.ami_port)
        assert (await ami.login("b24bridge", "ami-secret"))["Response"] == "Success"
        ari = AriWire(sim.ari_url, "b24bridge", "ari-secret")
        await ari.open()
        await eventually(lambda: sim.bus.is_active("b24bridge"))
        try:
            yield Harness(sim, ari, ami)
        finally:
            await ari.close()
            await ami.close()


def assert_same_ari(actual: list[dict[str, Any]], scenario: str) -> None:
    assert ari_keys(actual) == ari_keys(recorded_ari(scenario))


def assert_same_ami(actual: list[dict[str, str]], scenario: str) -> None:
    recorded = call_events(recorded_ami(scenario))
    assert ami_by_channel(actual) == ami_by_channel(recorded)
    assert ami_globals(actual) == ami_globals(recorded)


async def test_a_inbound_no_answer_then_answer(harness: Harness) -> None:
    sim, ari = harness.sim, harness.ari
    sim.set_party("1002", NeverAnswer())
    sim.set_party("1001", Answer(after=0.15, talk=None))
    await harness.originate_caller("74951112233", '"Иван Петров" <79161234567>', "CALLER_HANGUP_AFTER=0.8")
    caller_id, bridge_id = await harness.answer_into_bridge(moh=True)
    who = '"Иван Петров" <79161234567>'
    first = await harness.originate_agent("1002", bridge_id, who, "0.2")
    await ari.wait_for("ChannelDestroyed", channel_id=first["id"])
    agent = await harness.originate_agent("1001", bridge_id, who, "20", {"variables": {"AGENT_TALK_SECS": "60"}})
    await ari.wait_for("StasisStart", channel_id=agent["id"])
    assert (await ari.call("DELETE", f"/bridges/{bridge_id}/moh"))[0] == 204
    assert (await ari.call("POST", f"/bridges/{bridge_id}/addChannel", {"channel": agent["id"]}))[0] == 204
    await ari.wait_for("StasisEnd", channel_id=caller_id)
    assert (await ari.call("DELETE", f"/channels/{agent['id']}", {"reason": "normal"}))[0] == 204
    assert (await ari.call("DELETE", f"/bridges/{bridge_id}"))[0] == 204
    await ari.wait_for("BridgeDestroyed")
    await eventually(lambda: not sim.pbx.channels)
    await eventually(lambda: len(harness.ami.events("Hangup")) == 6)

    assert_same_ari(ari.events, "a_inbound_noanswer_then_answer")
    assert_same_ami(harness.ami_events(), "a_inbound_noanswer_then_answer")


async def test_b_inbound_busy_unavailable_missed(harness: Harness) -> None:
    sim, ari = harness.sim, harness.ari
    sim.set_party("1003", Busy())
    sim.set_party("1004", Unregistered())
    who = '"ООО Ромашка" <74959876543>'
    await harness.originate_caller("74951112233", who, "CALLER_HANGUP_AFTER=0.5")
    caller_id, bridge_id = await harness.answer_into_bridge(moh=True)
    busy = await harness.originate_agent("1003", bridge_id, who, "15")
    await ari.wait_for("ChannelDestroyed", channel_id=busy["id"])
    absent = await harness.originate_agent("1004", bridge_id, who, "15")
    await ari.wait_for("ChannelDestroyed", channel_id=absent["id"])
    await ari.wait_for("StasisEnd", channel_id=caller_id)
    assert (await ari.call("DELETE", f"/bridges/{bridge_id}"))[0] == 204
    await ari.wait_for("BridgeDestroyed")
    await eventually(lambda: not sim.pbx.channels)
    await eventually(lambda: len(harness.ami.events("Hangup")) == 6)

    assert_same_ari(ari.events, "b_inbound_busy_unavailable_missed")
    assert_same_ami(harness.ami_events(), "b_inbound_busy_unavailable_missed")


async def test_c_inbound_dtmf(harness: Harness) -> None:
    sim, ari = harness.sim, harness.ari
    sim.set_party("1001", Answer(after=0.15, talk=None))
    sim.pbx.media.media_seconds = 0.05
    variables = "CALLER_HANGUP_AFTER=0.6,CALLER_DTMF_DELAY=0.2,CALLER_DTMF=2"
    await harness.originate_caller("74951112244", '"Иван Петров" <79161234567>', variables)
    start = await ari.wait_for("StasisStart", args=["inbound", "74951112244"])
    caller_id = start["channel"]["id"]
    await ari.call("POST", f"/channels/{caller_id}/answer")
    status, playback = await ari.call("POST", f"/channels/{caller_id}/play", {"media": "sound:hello-world"})
    assert (status, playback["state"]) == (201, "queued")
    await ari.wait_for("ChannelDtmfReceived", digit="2")
    assert (await ari.call("DELETE", f"/playbacks/{playback['id']}")) == (404, {"message": "Playback not found"})
    _, bridge = await ari.call("POST", "/bridges", {"type": "mixing", "name": f"call-{caller_id}"})
    await ari.call("POST", f"/bridges/{bridge['id']}/addChannel", {"channel": caller_id})
    who = '"Иван Петров" <79161234567>'
    agent = await harness.originate_agent("1001", bridge["id"], who, "20", {"variables": {"AGENT_TALK_SECS": "60"}})
    await ari.wait_for("StasisStart", channel_id=agent["id"])
    await ari.call("POST", f"/bridges/{bridge['id']}/addChannel", {"channel": agent["id"]})
    await ari.wait_for("StasisEnd", channel_id=caller_id)
    assert (await ari.call("DELETE", f"/channels/{agent['id']}"))[0] == 204
    assert (await ari.call("DELETE", f"/bridges/{bridge['id']}"))[0] == 204
    await ari.wait_for("BridgeDestroyed")
    await eventually(lambda: not sim.pbx.channels)
    await eventually(lambda: len(harness.ami.events("Hangup")) == 4)

    assert_same_ari(ari.events, "c_inbound_dtmf")
    assert_same_ami(harness.ami_events(), "c_inbound_dtmf")


async def test_d_outbound_dialplan(harness: Harness) -> None:
    sim = harness.sim
    sim.set_party("1001", Answer(after=0))  # the recorded phone robot picks up at once
    sim.set_party("84951234567", Answer(after=0.2, talk=0.3))
    response = await harness.ami.action(
        "Originate",
        Channel="Local/1001@phones",
        Context="from-agents",
        Exten="84951234567",
        Priority="1",
        CallerID='"Agent 1001" <1001>',
        Variable="PHONE_HANGUP_AFTER=120",
        Async="true",
    )
    assert response["Response"] == "Success"
    await eventually(lambda: len(harness.ami.events("Hangup")) == 4)
    await eventually(lambda: harness.ami.events("BridgeDestroy"))

    assert harness.ari.events == []  # as recorded: a dialplan call shows nothing on ARI
    assert_same_ami(harness.ami_events(), "d_outbound_dialplan")
    assert sim.recordings, "MixMonitor leaves a recording"
