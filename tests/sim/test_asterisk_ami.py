"""The simulator's AMI: framing, login, actions, events, chunked writes, fault hooks, panoramisk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from panoramisk import Manager

from bridge.sim.asterisk import Answer, AsteriskSimulator, Busy
from tests.eventually import eventually
from tests.sim.asterisk_clients import AmiWire, AriWire

CALLER = '"Иван Петров" <79161234567>'


@pytest.fixture
async def sim() -> AsyncIterator[AsteriskSimulator]:
    async with AsteriskSimulator(media_seconds=0.05) as simulator:
        yield simulator


@pytest.fixture
async def ami(sim: AsteriskSimulator) -> AsyncIterator[AmiWire]:
    wire = await AmiWire.connect(sim.ami_host, sim.ami_port)
    assert (await wire.login("b24bridge", "ami-secret"))["Response"] == "Success"
    yield wire
    await wire.close()


async def test_banner_login_events_ping_and_logoff(sim: AsteriskSimulator) -> None:
    wire = await AmiWire.connect(sim.ami_host, sim.ami_port)
    assert wire.banner == b"Asterisk Call Manager/9.0.0"
    login = await wire.login("b24bridge", "ami-secret")
    assert (login["Response"], login["Message"]) == ("Success", "Authentication accepted")
    await eventually(lambda: wire.events("FullyBooted") and wire.events("SuccessfulAuth"))
    assert wire.events("SuccessfulAuth")[0]["AccountID"] == "b24bridge"
    pong = await wire.action("Ping")
    assert (pong["Response"], pong["Ping"]) == ("Success", "Pong")
    assert float(pong["Timestamp"]) > 0
    goodbye = await wire.action("Logoff")
    assert (goodbye["Response"], goodbye["Message"]) == ("Goodbye", "Thanks for all the fish.")
    await asyncio.wait_for(wire.closed.wait(), 5)
    await wire.close()


async def test_wrong_secret_is_refused_and_the_connection_closed(sim: AsteriskSimulator) -> None:
    wire = await AmiWire.connect(sim.ami_host, sim.ami_port)
    refused = await wire.login("b24bridge", "guess")
    assert (refused["Response"], refused["Message"]) == ("Error", "Authentication failed")
    await asyncio.wait_for(wire.closed.wait(), 5)
    assert not wire.events()
    await wire.close()


async def test_actions_before_login_are_refused(sim: AsteriskSimulator) -> None:
    wire = await AmiWire.connect(sim.ami_host, sim.ami_port)
    refused = await wire.action("Ping")
    assert (refused["Response"], refused["Message"]) == ("Error", "Permission denied")
    await wire.close()


async def test_events_off_stops_delivery_until_on(sim: AsteriskSimulator, ami: AmiWire) -> None:
    assert (await ami.action("Events", EventMask="off"))["Events"] == "Off"
    sim.set_device_state("PJSIP/1001", "INUSE")
    assert (await ami.action("Events", EventMask="on"))["Events"] == "On"
    sim.set_device_state("PJSIP/1001", "NOT_INUSE")
    await eventually(lambda: ami.events("DeviceStateChange"))
    assert [e["State"] for e in ami.events("DeviceStateChange")] == ["NOT_INUSE"]


async def test_command_answers_with_one_output_header_per_line(sim: AsteriskSimulator, ami: AmiWire) -> None:
    action_id = ami.send("Command", Command="core show version")
    await eventually(lambda: ami.with_id(action_id))
    frame = ami.with_id(action_id)[0]
    outputs = [value for name, value in frame if name == "Output"]
    assert outputs and outputs[0].startswith("Asterisk 20.")
    sim.set_endpoint_state("PJSIP/1001", "online")
    sim.set_endpoint_state("PJSIP/1002", "online")
    contacts_id = ami.send("Command", Command="pjsip show contacts")
    await eventually(lambda: ami.with_id(contacts_id))
    lines = [value for name, value in ami.with_id(contacts_id)[0] if name == "Output"]
    assert lines[-1] == "Objects found: 2"
    unknown = await ami.action("Command", Command="core fly away")
    assert unknown["Response"] == "Error" and "No such command" in unknown["Output"]


async def test_core_show_channels_lists_every_channel(sim: AsteriskSimulator, ami: AmiWire, ari: AriWire) -> None:
    await sim.place_inbound_call("74951112233", "79161234567", "Иван Петров")
    await ari.wait_for("StasisStart")
    action_id = ami.send("CoreShowChannels")
    await eventually(lambda: any(f[0] == ("Event", "CoreShowChannelsComplete") for f in ami.with_id(action_id)))
    frames = [dict(f) for f in ami.with_id(action_id)]
    assert (frames[0]["Response"], frames[0]["EventList"]) == ("Success", "start")
    rows = [f for f in frames if f.get("Event") == "CoreShowChannel"]
    assert sorted(r["Channel"][-2:] for r in rows) == [";1", ";2"]
    assert {r["Linkedid"] for r in rows} == {rows[0]["Linkedid"]}
    assert frames[-1]["ListItems"] == "2"
    text_id = ami.send("Command", Command="core show channels")
    await eventually(lambda: ami.with_id(text_id))
    output = [value for name, value in ami.with_id(text_id)[0] if name == "Output"]
    assert output[-2:] == ["2 active channels", "1 active call"]


async def test_hangup_and_getvar_act_on_the_named_channel(sim: AsteriskSimulator, ami: AmiWire, ari: AriWire) -> None:
    call = await sim.place_inbound_call("74951112233", "79161234567", "Иван Петров")
    await ari.wait_for("StasisStart")
    name = call.stasis_channel.name
    linked = await ami.action("Getvar", Channel=name, Variable="CHANNEL(linkedid)")
    assert linked["Value"] == call.linkedid
    missing = await ami.action("Hangup", Channel="PJSIP/none-00000000")
    assert (missing["Response"], missing["Message"]) == ("Error", "No such channel")
    assert (await ami.action("Hangup", Channel=name, Cause="21"))["Response"] == "Success"
    await asyncio.wait_for(call.ended(), 5)
    causes = {e["Channel"][-2:]: e["Cause"] for e in ami.events("Hangup")}
    assert causes == {";1": "21", ";2": "21"}


async def test_sync_originate_waits_for_the_outcome(sim: AsteriskSimulator, ami: AmiWire) -> None:
    sim.set_party("1005", Busy())
    sim.set_party("1006", Answer(after=0.05))
    failed = await ami.action("Originate", Channel="PJSIP/1005", Application="Wait", Data="5")
    assert (failed["Response"], failed["Message"]) == ("Error", "Originate failed")
    ok = await ami.action("Originate", Channel="PJSIP/1006", Application="Wait", Data="5")
    assert (ok["Response"], ok["Message"]) == ("Success", "Originate successfully queued")
    assert not ami.events("OriginateResponse"), "only an async Originate reports OriginateResponse"


async def test_async_originate_reports_failure_with_a_reason(sim: AsteriskSimulator, ami: AmiWire) -> None:
    sim.set_party("1005", Busy())
    queued = await ami.action("Originate", Channel="PJSIP/1005", Application="Wait", Data="5", Async="true")
    assert queued["Message"] == "Originate successfully queued"
    await eventually(lambda: ami.events("OriginateResponse"))
    report = ami.events("OriginateResponse")[0]
    assert (report["Response"], report["Reason"], report["ActionID"]) == ("Failure", "5", queued["ActionID"])
    assert [e["DialStatus"] for e in ami.events("DialEnd")] == ["BUSY"]


async def test_originate_to_a_phone_that_is_not_registered(sim: AsteriskSimulator, ami: AmiWire) -> None:
    """As on Asterisk 20.20.1: no channel is created; async, the report names the dial string and no Uniqueid."""
    sim.set_endpoint_state("PJSIP/1009", "offline")
    failed = await ami.action("Originate", Channel="PJSIP/1009", Application="Stasis", Data="b24bridge")
    assert (failed["Response"], failed["Message"]) == ("Error", "Originate failed")
    queued = await ami.action("Originate", Channel="PJSIP/1009", Application="Stasis", Data="b24bridge", Async="true")
    assert queued["Response"] == "Success"
    await eventually(lambda: ami.events("OriginateResponse"))
    report = ami.events("OriginateResponse")[0]
    assert report == {
        "Event": "OriginateResponse", "Privilege": "call,all", "ActionID": queued["ActionID"], "Response": "Failure",
        "Channel": "PJSIP/1009", "Application": "Stasis", "Data": "b24bridge", "Reason": "0",
        "Uniqueid": "<unknown>", "CallerIDNum": "<unknown>", "CallerIDName": "<unknown>",
    }  # fmt: skip
    assert not ami.events("Newchannel")


async def test_bad_originate_and_unknown_actions_get_errors(ami: AmiWire) -> None:
    no_channel = await ami.action("Originate", Exten="100")
    assert (no_channel["Response"], no_channel["Message"]) == ("Error", "Channel not specified")
    bad_endpoint = await ami.action("Originate", Channel="nonsense", Exten="100")
    assert bad_endpoint["Response"] == "Error"
    unknown = await ami.action("DanceTheMacarena")
    assert (unknown["Response"], unknown["Message"]) == ("Error", "Invalid/unknown command")
    ami.send_raw(b"this line has no colon\r\n\r\n")
    assert (await ami.action("Ping"))["Ping"] == "Pong"


async def test_chunked_writes_split_inside_a_utf8_character(sim: AsteriskSimulator) -> None:
    reader, writer = await asyncio.open_connection(sim.ami_host, sim.ami_port)
    writer.write(b"Action: Login\r\nUsername: b24bridge\r\nSecret: ami-secret\r\n\r\n")
    received = bytearray()
    while b"SuccessfulAuth" not in received or not received.endswith(b"\r\n\r\n"):
        received += await reader.read(4096)
    sim.ami_chunk_size = 7
    await sim.inject_ami_event({"Event": "NewCallerid", "CallerIDName": "Иван Петров"})
    reads: list[bytes] = []
    while b"".join(reads).count(b"\r\n\r\n") < 1:
        reads.append(await reader.read(4096))
    data = b"".join(reads)
    assert "CallerIDName: Иван Петров\r\n" in data.decode()
    assert max(len(r) for r in reads) <= 4 * 7, "writes arrive as small pieces"
    torn = [r for r in reads if not _decodes(r)]
    assert torn, "some piece ends inside a two-byte character"
    writer.close()


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def test_silent_keeps_the_socket_but_answers_nothing_until_woken(sim: AsteriskSimulator, ami: AmiWire) -> None:
    sim.go_silent(ami=True)
    lost = ami.send("Ping")
    sim.set_device_state("PJSIP/1001", "INUSE")
    await eventually(lambda: sim.ami_server.dropped == ["Ping"])
    sim.wake()
    assert (await ami.action("Ping"))["Ping"] == "Pong"
    assert ami.response(lost) is None
    assert not ami.events("DeviceStateChange")
    assert not ami.closed.is_set()


async def test_drop_connections_closes_the_socket_and_new_logins_work(sim: AsteriskSimulator, ami: AmiWire) -> None:
    await sim.drop_connections(ami=True, ari=False)
    await asyncio.wait_for(ami.closed.wait(), 5)
    again = await AmiWire.connect(sim.ami_host, sim.ami_port)
    assert (await again.login("b24bridge", "ami-secret"))["Response"] == "Success"
    await again.close()


async def test_injected_events_and_bytes_reach_logged_in_sessions(sim: AsteriskSimulator, ami: AmiWire) -> None:
    await sim.inject_ami_event({"Event": "UserEvent", "UserEvent": "Hello"})
    await sim.inject_ami_bytes(b"Event: Broken\r\nNo colon here\r\n\r\n")
    await eventually(lambda: ami.events("UserEvent") and ami.events("Broken"))
    assert ami.events("UserEvent")[0]["UserEvent"] == "Hello"


async def test_requests_log_ami_actions_without_secrets(sim: AsteriskSimulator, ami: AmiWire) -> None:
    await ami.action("Ping")
    logged = [r for r in sim.requests if r["proto"] == "ami"]
    assert [r["method"] for r in logged] == ["Ping"]
    wire = await AmiWire.connect(sim.ami_host, sim.ami_port)
    await wire.login("b24bridge", "ami-secret")
    await wire.action("Originate", Channel="PJSIP/1001", Application="Wait", Data="1", Async="true", Secret="x")
    assert all("ami-secret" not in str(r) for r in sim.requests)
    assert [r["params"].get("Secret") for r in sim.requests if r["method"] == "Originate"] == ["***"]
    await wire.close()


async def test_panoramisk_logs_in_receives_events_and_runs_actions(sim: AsteriskSimulator) -> None:
    manager = Manager(
        loop=asyncio.get_running_loop(),
        host=sim.ami_host,
        port=sim.ami_port,
        username="b24bridge",
        secret="ami-secret",
        ping_delay=60,
    )
    received: list[dict[str, str]] = []
    manager.register_event("DeviceStateChange", lambda _manager, event: received.append(dict(event)))
    manager.connect()
    try:
        await eventually(lambda: manager.authenticated)
        sim.set_device_state("PJSIP/1001", "RINGING")
        await eventually(lambda: received)
        assert (received[0]["Device"], received[0]["State"]) == ("PJSIP/1001", "RINGING")
        pong = await manager.send_action({"Action": "Ping"})
        assert pong.ping == "Pong"
        version = await manager.send_action({"Action": "Command", "Command": "core show version"})
        assert str(version.output).startswith("Asterisk 20.")
    finally:
        manager.close()


async def test_originate_into_stasis_with_application_data(sim: AsteriskSimulator, ami: AmiWire, ari: AriWire) -> None:
    sim.set_party("1007", Answer(after=0.05))
    queued = await ami.action(
        "Originate", Channel="PJSIP/1007", Application="Stasis", Data="b24bridge,callback,1007",
        CallerID=CALLER, Async="true",
    )  # fmt: skip
    assert queued["Response"] == "Success"
    start = await ari.wait_for("StasisStart", args=["callback", "1007"])
    assert start["channel"]["caller"] == {"name": "Иван Петров", "number": "79161234567"}
    await eventually(lambda: ami.events("OriginateResponse"))
    assert ami.events("OriginateResponse")[0]["Response"] == "Success"


async def test_caller_robot_variables_script_an_originated_customer(
    sim: AsteriskSimulator, ami: AmiWire, ari: AriWire
) -> None:
    await ami.action(
        "Originate", Channel="Local/74951112244@from-trunk", Context="callers", Exten="s", Priority="1",
        CallerID=CALLER, Variable="CALLER_HANGUP_AFTER=0.1,CALLER_DTMF_DELAY=0.1,CALLER_DTMF=2", Async="true",
    )  # fmt: skip
    start = await ari.wait_for("StasisStart", args=["inbound", "74951112244"])
    assert not [e for e in ari.events if e["type"] == "ChannelDtmfReceived"], "the robot waits for the answer"
    await ari.call("POST", f"/channels/{start['channel']['id']}/answer")
    dtmf = await ari.wait_for("ChannelDtmfReceived", digit="2")
    end = await ari.wait_for("StasisEnd", channel_id=start["channel"]["id"])
    assert ari.events.index(dtmf) < ari.events.index(end)
