"""AmiLink against the Asterisk simulator over real sockets."""

from __future__ import annotations

import asyncio
import configparser
import socket
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bridge.domain.events import (
    Direction,
    ObservedAnswered,
    ObservedEnded,
    ObservedRecording,
    ObservedStarted,
)
from bridge.pbx.ami import AmiLink
from bridge.pbx.ami_events import USED_EVENTS
from bridge.pbx.events import DeviceStateSeen, PbxError, Resynced
from bridge.sim.asterisk.ami_access import get_perm
from bridge.sim.asterisk.parties import Answer
from bridge.sim.asterisk.simulator import AsteriskSimulator
from tests.adapters.pbx_fixtures import AMI_SECRET, Events, running, settings_for, sim
from tests.eventually import eventually
from tests.protocol.test_asterisk_conf import sample_eventfilters

__all__ = ["sim"]


async def test_an_outbound_call_from_a_phone_is_mirrored(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AmiLink(settings_for(sim), events.queue)
    async with running(link):
        await sim.place_outbound_call(from_ext="1001", number="84951234567", answer_after=0.2, talk=0.3)
        await events.wait(ObservedRecording)
    call = [e for e in events.all() if not isinstance(e.event, DeviceStateSeen | Resynced)]
    linkedid = call[0].call
    assert all(e.call == linkedid and e.linkedid == linkedid for e in call)
    started, answered, ended, recording = (e.event for e in call)
    assert isinstance(started, ObservedStarted)
    assert (started.direction, started.ext, started.number) == (Direction.OUTBOUND, "1001", "84951234567")
    assert answered == ObservedAnswered("")
    assert isinstance(ended, ObservedEnded) and (ended.dialstatus, ended.cause) == ("ANSWER", 16)
    assert recording == ObservedRecording(ended.recording) and ended.recording
    phone = [e.event for e in events.of(DeviceStateSeen)]
    assert phone[0] == DeviceStateSeen("1001", "INUSE")
    assert phone[-1] == DeviceStateSeen("1001", "NOT_INUSE")


async def test_a_caller_name_split_inside_a_character_stays_whole(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AmiLink(settings_for(sim), events.queue)
    async with running(link):
        await sim.place_outbound_call(from_ext="1001", number="84951234567", caller_name="Иван Петров", talk=5.0)
        await events.wait(ObservedAnswered)
        sim.ami_chunk_size = 3  # every run of two-byte characters gets a read boundary inside a character
        channels = await link.core_show_channels()
    names = {c.get("CallerIDName") or "" for c in channels}
    assert {name for name in names if not name.isascii()} == {"Иван Петров"}, names


async def test_command_output_is_a_list_of_lines(sim: AsteriskSimulator) -> None:
    link = AmiLink(settings_for(sim), asyncio.Queue())
    async with running(link):
        version = await link.command("core show version")
        channels = await link.command("core show channels")
        try:
            await link.command("no such thing")
        except PbxError as exc:
            refused = exc
    assert len(version) == 1 and version[0].startswith("Asterisk 20"), "a single Output: header is one line"
    assert channels[-2:] == ["0 active channels", "0 active calls"]
    assert refused.action == "Command"


async def test_an_async_originate_runs_on_its_own_while_events_keep_flowing(sim: AsteriskSimulator) -> None:
    sim.set_party("84950000001", Answer(after=0.2, talk=0.2))
    events = Events()
    link = AmiLink(settings_for(sim), events.queue)
    async with running(link):
        originate = link.originate_async("Local/1001@phones", context="from-agents", exten="84950000001", timeout=5)
        version = await link.command("core show version")
        assert version and not originate.done(), "other actions are answered while the originate waits"
        await events.wait(ObservedStarted)
        result = await asyncio.wait_for(originate, 5)
    assert result.success and result.reason == 4


async def test_a_dropped_connection_mid_call_reconnects_and_resyncs(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AmiLink(settings_for(sim), events.queue)
    async with running(link):
        await sim.place_outbound_call(from_ext="1002", number="84957654321", answer_after=0.1, talk=1.0)
        (started,) = await events.wait(ObservedStarted)
        await sim.drop_connections(ami=True, ari=False)
        resyncs = await events.wait(Resynced, count=2)
        listed = resyncs[-1].event
        assert isinstance(listed, Resynced) and listed.link == "ami"
        assert started.call in {channel.linkedid for channel in listed.channels}, "the live call is listed"
        (ended,) = await events.wait(ObservedEnded)
    assert ended.call == started.call, "the call is still followed after the reconnect"


async def test_a_silent_half_open_connection_is_noticed_by_the_watchdog(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AmiLink(settings_for(sim, ping_interval=0.2), events.queue)
    link.action_timeout = 0.5
    with capture_logs() as logs:
        async with running(link):
            await events.wait(Resynced)
            sim.go_silent(ami=True)
            await eventually(lambda: not link.connected, timeout=3)
            sim.wake()
            await events.wait(Resynced, count=2)
            assert link.connected
    assert any(entry["event"] == "pbx.pong_missing" for entry in logs)


async def test_reconnect_backs_off_up_to_the_cap() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from bridge.config import AsteriskSettings

    link = AmiLink(AsteriskSettings(ami_port=port, reconnect_max_delay=0.2), asyncio.Queue())
    link.retry_initial = 0.05
    with capture_logs() as logs:
        task = asyncio.create_task(link.run())
        await eventually(lambda: len([e for e in logs if e["event"] == "pbx.reconnecting"]) >= 5, timeout=5)
        await link.stop()
        await asyncio.wait_for(task, 5)
    delays = [e["delay"] for e in logs if e["event"] == "pbx.reconnecting"][:5]
    assert delays == [0.05, 0.1, 0.2, 0.2, 0.2]
    assert not link.connected


async def test_malformed_frames_are_logged_and_change_nothing(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AmiLink(settings_for(sim), events.queue)
    with capture_logs() as logs:
        async with running(link):
            await events.wait(Resynced)
            await sim.inject_ami_bytes(b"this is not AMI at all\r\n\r\n")
            await sim.inject_ami_event({"Event": "Hangup", "Uniqueid": "1.1", "Cause": "sixteen"})
            await sim.inject_ami_event({"Event": "DeviceStateChange", "Device": "Local/1001@phones", "State": "?"})
            await sim.inject_ami_event({"Event": "Newchannel", "Channel": "Local/1001@phones-1;1", "Uniqueid": "2.2"})
            await eventually(lambda: len([e for e in logs if e["event"] == "pbx.bad_input"]) >= 4, timeout=3)
            assert link.connected and await link.command("core show version")
            await sim.place_outbound_call(from_ext="1001", number="84951234567", answer_after=0.1, talk=0.1)
            await events.wait(ObservedEnded)
    assert next(type(e.event).__name__ for e in events.all()) == "Resynced", "no event came from the bad input"
    assert all("secret" not in str(entry) for entry in logs)


async def test_a_wrong_secret_is_refused_and_retried_without_showing_it(sim: AsteriskSimulator) -> None:
    from bridge.config import Secret

    link = AmiLink(settings_for(sim, ami_secret=Secret("wrong-secret-value")), asyncio.Queue())
    link.retry_initial = 0.05
    with capture_logs() as logs:
        task = asyncio.create_task(link.run())
        await eventually(lambda: any(e["event"] == "pbx.connect_failed" for e in logs), timeout=5)
        await link.stop()
        await asyncio.wait_for(task, 5)
    assert not link.connected
    assert "wrong-secret-value" not in repr(logs)


async def test_device_states_arrive_with_the_resync_and_as_they_change(sim: AsteriskSimulator) -> None:
    sim.set_device_state("PJSIP/1001", "INUSE")
    events = Events()
    link = AmiLink(settings_for(sim, device="PJSIP/{ext}"), events.queue)
    async with running(link):
        (resynced,) = await events.wait(Resynced)
        sim.set_device_state("PJSIP/1001", "UNAVAILABLE")
        await events.wait(DeviceStateSeen)
    assert isinstance(resynced.event, Resynced) and resynced.event.devices.get("1001") == "INUSE"
    changed = [e.event for e in events.of(DeviceStateSeen)]
    assert changed[-1] == DeviceStateSeen("1001", "UNAVAILABLE")


async def test_stop_does_not_wait_for_a_silent_asterisk(sim: AsteriskSimulator) -> None:
    sim.go_silent(ami=True)
    link = AmiLink(settings_for(sim), asyncio.Queue())
    with capture_logs() as logs:
        task = asyncio.create_task(link.run())
        await eventually(lambda: any(e["event"] == "sim.ami_dropped_silent" for e in logs), timeout=3)
        await link.stop()
        await asyncio.wait_for(task, 1.0)
    assert not link.connected


def fed_kinds(link: AmiLink) -> list[str]:
    """The Event of every AMI event the link hands its translator, as it goes."""
    kinds: list[str] = []
    feed = link.translator.feed

    def recording(message: Any) -> Any:
        kinds.append(str(message.get("Event")))
        return feed(message)

    link.translator.feed = recording  # type: ignore[method-assign]
    return kinds


async def a_real_sites_traffic(sim: AsteriskSimulator, events: Events) -> None:
    """A phone registers, a global variable is set, a recorded outbound call with DTMF runs to its end."""
    sim.set_endpoint_state("PJSIP/1009", "online")  # ContactStatus, PeerStatus: system
    sim.set_global_variable("RECORD_CALLS", "yes")  # VarSet without a channel: dialplan
    call = await sim.place_outbound_call(from_ext="1001", number="84951234567", answer_after=0.1, talk=0.3)
    await events.wait(ObservedAnswered)
    sim.pbx.media.dtmf_received(call.channel, "5")  # DTMFBegin/End: dtmf
    await events.wait(ObservedRecording)  # Cdr (cdr) came with the hangups


async def test_the_login_asks_only_for_the_events_the_bridge_reads(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AmiLink(settings_for(sim), events.queue)
    kinds = fed_kinds(link)
    with capture_logs() as logs:
        async with running(link):
            await events.wait(Resynced)
            (session,) = sim.ami_server.sessions
            assert session.access.mask == get_perm("call,dialplan")
            filters = [r["params"] for r in sim.requests if r["method"] == "Filter"]
            assert [f["Operation"] for f in filters] == ["Add", "Add"]
            assert [f["Filter"].startswith("!") for f in filters] == [False, True], "one include: none is lost"
            await a_real_sites_traffic(sim, events)
    assert set(kinds) <= set(USED_EVENTS), set(kinds) - set(USED_EVENTS)
    varsets = [k for k in kinds if k == "VarSet"]
    assert len(varsets) == 1, "only the recording's file name passes the filter"
    assert isinstance(events.of(ObservedEnded)[0].event, ObservedEnded)
    assert not [e for e in logs if e["event"] in ("pbx.bad_input", "pbx.ami_filter_refused")]


def sample_ami_user() -> configparser.SectionProxy:
    conf = configparser.ConfigParser(strict=False, interpolation=None, inline_comment_prefixes=(";",))
    conf.read_string((Path(__file__).resolve().parents[2] / "asterisk-conf" / "manager.conf").read_text())
    return conf["b24bridge"]


@pytest.mark.parametrize("with_eventfilters", [True, False])
async def test_with_the_sample_manager_conf_calls_are_mirrored_from_less_traffic(with_eventfilters: bool) -> None:
    user, eventfilters = sample_ami_user(), sample_eventfilters() if with_eventfilters else []
    async with AsteriskSimulator(
        ami_secret=AMI_SECRET, ami_read=user["read"], ami_write=user["write"], ami_eventfilters=eventfilters
    ) as sim:
        events = Events()
        link = AmiLink(settings_for(sim), events.queue)
        kinds = fed_kinds(link)
        with capture_logs() as logs:
            async with running(link):
                await events.wait(Resynced)
                await a_real_sites_traffic(sim, events)
    refused = [e for e in logs if e["event"] == "pbx.ami_filter_refused"]
    assert refused and refused[0]["error"] == "Permission denied" and refused[0]["log_level"] == "info"
    if with_eventfilters:
        assert set(kinds) <= set(USED_EVENTS), "manager.conf's eventfilter lines did what the Filter action would"
        assert kinds.count("VarSet") == 1
    else:  # the Events mask alone: every call and dialplan event, no other class
        assert {"VarSet", "Newexten", "NewCallerid"} <= set(kinds)
        assert not {"PeerStatus", "ContactStatus", "DTMFBegin", "Cdr", "SuccessfulAuth", "FullyBooted"} & set(kinds)
    ended = events.of(ObservedEnded)[0].event
    assert isinstance(ended, ObservedEnded) and ended.recording, "the recording's VarSet still comes"
    assert not [e for e in logs if e["event"] == "pbx.bad_input"], "the global VarSet is no bad input"


def leg_event(event: str, uniqueid: str) -> list[tuple[str, str]]:
    """A channel event of a PJSIP channel, as Asterisk writes it (a leg of the bridge's: ``<call>-leg<n>``)."""
    return [
        ("Event", event), ("Privilege", "call,all"), ("Channel", "PJSIP/1001-0000002a"), ("ChannelState", "5"),
        ("ChannelStateDesc", "Ringing"), ("CallerIDNum", "1001"), ("CallerIDName", "<unknown>"), ("Context", "default"),
        ("Exten", "1001"), ("Priority", "1"), ("Uniqueid", uniqueid), ("Linkedid", uniqueid),
        *([("Cause", "16"), ("Cause-txt", "Normal Clearing")] if event == "Hangup" else []),
    ]  # fmt: skip


async def test_the_bridges_own_legs_and_other_devices_are_left_out_by_asterisk(sim: AsteriskSimulator) -> None:
    events = Events()
    link = AmiLink(settings_for(sim, device="PJSIP/{ext}"), events.queue)
    kinds = fed_kinds(link)
    async with running(link):
        await events.wait(Resynced)
        for event in ("Newchannel", "Newstate", "BridgeEnter", "Hangup"):
            await sim.inject_ami_event(leg_event(event, "1796647086.1-leg1"))
        await sim.inject_ami_event(leg_event("Newchannel", "1796647086.7"))  # a channel the dialplan made
        sim.set_device_state("Local/74951112233@from-trunk", "INUSE")  # no agent's device
        sim.set_device_state("PJSIP/1001", "RINGING")  # an agent's
        await events.wait(DeviceStateSeen)
        await eventually(lambda: link.hung_up_at("1796647086.1-leg1") is not None)
    assert kinds == ["Hangup", "Newchannel", "DeviceStateChange"], "only the leg's Hangup, and the agent's state"
    assert [e.event for e in events.of(DeviceStateSeen)] == [DeviceStateSeen("1001", "RINGING")]


async def test_without_write_system_the_legs_events_still_come_and_change_nothing() -> None:
    async with AsteriskSimulator(ami_secret=AMI_SECRET, ami_write="originate,reporting") as sim:
        events = Events()
        link = AmiLink(settings_for(sim, device="PJSIP/{ext}"), events.queue)
        kinds = fed_kinds(link)
        with capture_logs() as logs:
            async with running(link):
                await events.wait(Resynced)
                for event in ("Newchannel", "Newstate", "Hangup"):
                    await sim.inject_ami_event(leg_event(event, "1796647086.1-leg1"))
                sim.set_device_state("Local/74951112233@from-trunk", "INUSE")
                await eventually(lambda: link.hung_up_at("1796647086.1-leg1") is not None)
                await sim.place_outbound_call(from_ext="1001", number="84951234567", answer_after=0.1, talk=0.1)
                await events.wait(ObservedEnded)
    assert kinds[:3] == ["Newchannel", "Newstate", "Hangup"]
    assert [e for e in logs if e["event"] == "pbx.ami_filter_refused"], "said once at the connect"
    assert not [e for e in logs if e["event"] == "pbx.bad_input"]
    assert len(events.of(ObservedStarted)) == 1, "the leg is no watched call"
