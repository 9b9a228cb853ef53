"""The simulator's ARI: auth, Swagger docs with aioari, REST errors, originate outcomes, media."""

from __future__ import annotations

import asyncio
import json
import wave
from typing import Any

import aioari
import aiohttp
import pytest

from bridge.sim.asterisk import Answer, AsteriskSimulator, Busy, Congestion, NeverAnswer, Reject, Unregistered
from bridge.sim.asterisk.parties import Party
from tests.eventually import eventually
from tests.sim.asterisk_clients import AriWire

WHO = '"Иван Петров" <79161234567>'


async def originate(ari: AriWire, endpoint: str, **extra: str) -> dict[str, Any]:
    params = {"endpoint": endpoint, "app": "b24bridge", "appArgs": "agent,b-1,x", "callerId": WHO, **extra}
    status, channel = await ari.call("POST", "/channels", params)
    assert status == 200, channel
    return dict(channel)


def dial_statuses(ari: AriWire, channel_id: str) -> list[str]:
    return [e["dialstatus"] for e in ari.events if e["type"] == "Dial" and e["peer"]["id"] == channel_id]


def destroyed(ari: AriWire) -> dict[str, tuple[int, str]]:
    return {e["channel"]["name"]: (e["cause"], e["cause_txt"]) for e in ari.events if e["type"] == "ChannelDestroyed"}


# --- auth and documents ----------------------------------------------------------------------
async def test_requests_without_the_right_credentials_get_401(sim: AsteriskSimulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim.ari_url}/ari/channels") as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Basic")
            assert await resp.json() == {"message": "Authentication required"}
        async with session.get(f"{sim.ari_url}/ari/channels", params={"api_key": "b24bridge:nope"}) as resp:
            assert resp.status == 401
        async with session.get(f"{sim.ari_url}/ari/channels", params={"api_key": "b24bridge:ari-secret"}) as resp:
            assert (resp.status, await resp.json()) == (200, [])
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(f"{sim.ari_url}/ari/events?app=b24bridge&api_key=b24bridge:nope")
        assert refused.value.status == 401
    assert not sim.bus.is_active("b24bridge")
    assert all("ari-secret" not in str(r) for r in sim.requests)


async def test_api_docs_point_aioari_at_this_server(sim: AsteriskSimulator) -> None:
    wire = AriWire(sim.ari_url, "b24bridge", "ari-secret")
    _, listing = await wire.call("GET", "/api-docs/resources.json")
    assert listing["swaggerVersion"] == "1.1" and listing["basePath"] == f"{sim.ari_url}/ari"
    _, channels_doc = await wire.call("GET", "/api-docs/channels.json")
    assert channels_doc["basePath"] == f"{sim.ari_url}/ari"
    assert (await wire.call("GET", "/api-docs/nothing.json"))[0] == 404
    await wire.close()


async def test_aioari_loads_the_docs_and_gets_stasis_start(sim: AsteriskSimulator) -> None:
    client = await aioari.connect(sim.ari_url, "b24bridge", "ari-secret")
    started: list[Any] = []
    client.on_channel_event("StasisStart", lambda objects, event: started.append((objects, event)))
    runner = asyncio.create_task(client.run(apps="b24bridge"))
    try:
        await eventually(lambda: sim.bus.is_active("b24bridge"))
        assert await client.channels.list() == []
        bridge = await client.bridges.create(type="mixing", name="call-1")
        assert bridge.json["bridge_type"] == "mixing"
        call = await sim.place_inbound_call("74951112233", "79161234567", "Иван Петров")
        await eventually(lambda: started)
        objects, event = started[0]
        assert isinstance(objects, dict), "aioari hands StasisStart callbacks a dict: two Channel fields"
        channel = objects["channel"]
        assert channel.id == call.channel_id and event["args"] == ["inbound", "74951112233"]
        await channel.answer()
        await bridge.addChannel(channel=channel.id)
        assert (await client.bridges.get(bridgeId=bridge.id)).json["channels"] == [channel.id]
        linkedid = await channel.getChannelVar(variable="CHANNEL(linkedid)")
        assert linkedid == {"value": call.linkedid}
        await channel.hangup()
        await asyncio.wait_for(call.ended(), 5)
    finally:
        await client.close()
        runner.cancel()


# --- REST errors -----------------------------------------------------------------------------
async def test_originate_rejects_bad_parameters(ari: AriWire) -> None:
    assert (await ari.call("POST", "/channels", {"app": "b24bridge"}))[0] == 400
    both = {"endpoint": "PJSIP/1001", "app": "b24bridge", "extension": "100"}
    assert (await ari.call("POST", "/channels", both))[0] == 400
    assert (await ari.call("POST", "/channels", {"endpoint": "PJSIP/1001"}))[0] == 400
    status, body = await ari.call("POST", "/channels", {"endpoint": "nonsense", "app": "b24bridge"})
    assert status == 400 and "Technology/resource" in body["message"]
    status, body = await ari.call("POST", "/channels", {"endpoint": "PJSIP/1001", "app": "b24bridge"}, [1, 2])
    assert (status, body) == (400, {"message": "Request body must be a JSON object"})


async def test_a_duplicate_channel_id_is_409(sim: AsteriskSimulator, ari: AriWire) -> None:
    sim.set_party("1001", NeverAnswer())
    first = await originate(ari, "Local/1001@agents", channelId="leg-1", otherChannelId="leg-1b")
    assert first["id"] == "leg-1"
    again = await ari.call("POST", "/channels", {"endpoint": "PJSIP/1002", "app": "b24bridge", "channelId": "leg-1"})
    assert again == (409, {"message": "Channel with given unique ID already exists"})
    other = await ari.call("POST", "/channels/leg-1b", {"endpoint": "PJSIP/1002", "app": "b24bridge"})
    assert other[0] == 409
    assert (await ari.call("GET", "/channels/leg-1b"))[1]["name"].endswith(";2")


async def test_a_bridge_id_in_use_is_409_for_create_and_create_with_id(ari: AriWire) -> None:
    made = await ari.call("POST", "/bridges/call-1", {"type": "mixing", "name": "call-1"})
    assert made[0] == 200 and made[1]["id"] == "call-1"
    conflict = (409, {"message": "Bridge with id 'call-1' already exists"})
    assert await ari.call("POST", "/bridges/call-1", {"type": "mixing"}) == conflict
    assert await ari.call("POST", "/bridges", {"bridgeId": "call-1"}) == conflict
    assert await ari.call("DELETE", "/bridges/call-1") == (204, None)
    assert (await ari.call("POST", "/bridges/call-1", {"type": "mixing"}))[0] == 200


async def test_unknown_objects_are_404_and_non_stasis_channels_409(sim: AsteriskSimulator, ari: AriWire) -> None:
    assert await ari.call("GET", "/channels/nope") == (404, {"message": "Channel not found"})
    assert await ari.call("DELETE", "/bridges/nope") == (404, {"message": "Bridge not found"})
    assert await ari.call("GET", "/playbacks/nope") == (404, {"message": "Playback not found"})
    assert (await ari.call("GET", "/no/such/resource"))[0] == 404
    sim.set_party("1001", NeverAnswer())
    ringing = await originate(ari, "PJSIP/1001")
    assert await ari.call("POST", f"/channels/{ringing['id']}/answer") == (
        409,
        {"message": "Channel not in Stasis application"},
    )
    assert (await ari.call("DELETE", f"/channels/{ringing['id']}", {"reason": "sideways"}))[0] == 400


# --- originate outcomes ----------------------------------------------------------------------
OUTCOMES: list[tuple[Party, list[str], int, str]] = [
    (Busy(), ["", "BUSY"], 17, "User busy"),
    (Congestion(), ["", "CONGESTION"], 34, "Circuit/channel congestion"),
    (Reject(after=0.05), ["", "RINGING", "NOANSWER"], 21, "Call Rejected"),
    (NeverAnswer(), ["", "RINGING"], 19, "User alerting, no answer"),
]


@pytest.mark.parametrize(("party", "statuses", "cause", "cause_txt"), OUTCOMES)
async def test_pjsip_outcomes_use_one_channel(
    sim: AsteriskSimulator, ari: AriWire, party: Party, statuses: list[str], cause: int, cause_txt: str
) -> None:
    sim.set_party("1001", party)
    channel = await originate(ari, "PJSIP/1001", timeout="0.2")
    assert channel["name"].startswith("PJSIP/1001-") and channel["state"] == "Down"
    await ari.wait_for("ChannelDestroyed", channel_id=channel["id"])
    assert dial_statuses(ari, channel["id"]) == statuses
    assert destroyed(ari) == {channel["name"]: (cause, cause_txt)}


@pytest.mark.parametrize(
    ("party", "status", "outer", "inner"),
    [(Congestion(), "CONGESTION", 0, 34), (Reject(after=0.05), "NOANSWER", 21, 21)],
)
async def test_local_outcomes_seen_in_probes(
    sim: AsteriskSimulator, ari: AriWire, party: Party, status: str, outer: int, inner: int
) -> None:
    sim.set_party("1006", party)
    channel = await originate(ari, "Local/1006@agents")
    await ari.wait_for("ChannelDestroyed", channel_id=channel["id"])
    await eventually(lambda: len(destroyed(ari)) == 2)
    assert dial_statuses(ari, channel["id"])[-1] == status
    causes = {name[-2:]: cause for name, (cause, _) in destroyed(ari).items()}
    assert causes == {";1": outer, ";2": inner}


async def test_answered_pjsip_leg_enters_stasis_with_its_args(sim: AsteriskSimulator, ari: AriWire) -> None:
    sim.set_party("1001", Answer(after=0.05, talk=0.1))
    channel = await originate(ari, "PJSIP/1001", appArgs="agent,b-7,1001")
    start = await ari.wait_for("StasisStart", channel_id=channel["id"])
    assert start["args"] == ["agent", "b-7", "1001"] and start["channel"]["state"] == "Up"
    assert dial_statuses(ari, channel["id"]) == ["", "RINGING", "ANSWER"]
    await ari.wait_for("StasisEnd", channel_id=channel["id"])
    assert destroyed(ari) == {channel["name"]: (16, "Normal Clearing")}


async def test_create_then_dial_rings_a_channel_already_in_stasis(sim: AsteriskSimulator, ari: AriWire) -> None:
    sim.set_party("1009", Answer(after=0.05))
    caller = await originate(ari, "PJSIP/1009")
    sim.set_party("1002", Answer(after=0.05))
    params = {"endpoint": "PJSIP/1002", "app": "b24bridge", "appArgs": "dialed"}
    status, created = await ari.call("POST", "/channels/create", params)
    assert status == 200
    start = await ari.wait_for("StasisStart", channel_id=created["id"])
    assert (start["channel"]["state"], start["args"]) == ("Down", ["dialed"])
    await ari.wait_for("StasisStart", channel_id=caller["id"])
    dial = {"caller": caller["id"], "timeout": "5"}
    assert (await ari.call("POST", f"/channels/{created['id']}/dial", dial))[0] == 204
    answer = await ari.wait_for("Dial", dialstatus="ANSWER", peer_name="PJSIP/1002")
    assert answer["caller"]["id"] == caller["id"]
    assert [e for e in ari.events if e["type"] == "StasisStart" and e["channel"]["id"] == created["id"]] == [start]
    assert (await ari.call("POST", f"/channels/{created['id']}/dial"))[0] == 409


# --- media -----------------------------------------------------------------------------------
async def test_playback_runs_queued_playing_done(sim: AsteriskSimulator, ari: AriWire) -> None:
    sim.set_party("1001", Answer(after=0))
    channel = await originate(ari, "PJSIP/1001")
    await ari.wait_for("StasisStart", channel_id=channel["id"])
    status, playback = await ari.call("POST", f"/channels/{channel['id']}/play", {"media": "sound:hello-world"})
    assert (status, playback["state"], playback["target_uri"]) == (201, "queued", f"channel:{channel['id']}")
    finished = await ari.wait_for("PlaybackFinished")
    started = await ari.wait_for("PlaybackStarted")
    assert (started["playback"]["state"], finished["playback"]["state"]) == ("playing", "done")
    assert ari.events.index(started) < ari.events.index(finished)
    assert (await ari.call("DELETE", f"/playbacks/{playback['id']}"))[0] == 404
    params = {"media": "tone:ring", "playbackId": "pb-1"}
    assert (await ari.call("POST", f"/channels/{channel['id']}/play", params))[0] == 201
    await eventually(lambda: len([e for e in ari.events if e["type"] == "PlaybackStarted"]) == 2)
    assert (await ari.call("DELETE", "/playbacks/pb-1"))[0] == 204
    await eventually(lambda: len([e for e in ari.events if e["type"] == "PlaybackFinished"]) == 2)


async def test_recording_writes_a_real_wav_file(sim: AsteriskSimulator, ari: AriWire) -> None:
    sim.set_party("1001", Answer(after=0))
    channel = await originate(ari, "PJSIP/1001")
    await ari.wait_for("StasisStart", channel_id=channel["id"])
    params = {"name": "call-1", "format": "wav", "ifExists": "fail", "beep": "false", "terminateOn": "#"}
    status, live = await ari.call("POST", f"/channels/{channel['id']}/record", params)
    assert (status, live["state"]) == (201, "queued")
    await ari.wait_for("RecordingStarted")
    assert (await ari.call("GET", "/recordings/live/call-1"))[1]["state"] == "recording"
    await asyncio.sleep(0.3)  # the recording's length is what is measured here
    assert (await ari.call("POST", "/recordings/live/call-1/stop"))[0] == 204
    finished = await ari.wait_for("RecordingFinished")
    assert finished["recording"]["state"] == "done"
    stored = sim.recordings["call-1"]
    assert stored["format"] == "wav" and 0.25 <= stored["duration"] < 2
    with wave.open(str(stored["path"])) as audio:
        assert audio.getframerate() == 8000 and audio.getnframes() >= 0.25 * 8000
    async with ari.session.get(f"{sim.ari_url}/ari/recordings/stored/call-1/file") as resp:
        assert resp.status == 200 and (await resp.read())[:4] == b"RIFF"
    assert (await ari.call("GET", "/recordings/stored"))[1] == [{"name": "call-1", "format": "wav"}]
    again = await ari.call("POST", f"/channels/{channel['id']}/record", params)
    assert again[0] == 409
    mp3 = await ari.call("POST", f"/channels/{channel['id']}/record", {**params, "name": "x", "format": "mp3"})
    assert mp3[0] == 422


# --- subscriptions and device/endpoint state -------------------------------------------------
async def test_device_states_reach_subscribed_apps_only(sim: AsteriskSimulator, ari: AriWire) -> None:
    sim.set_device_state("PJSIP/1001", "INUSE")
    source = {"eventSource": "deviceState:PJSIP/1001"}
    status, app = await ari.call("POST", "/applications/b24bridge/subscription", source)
    assert status == 200 and app["device_names"] == ["PJSIP/1001"]
    sim.set_device_state("PJSIP/1001", "NOT_INUSE")
    sim.set_device_state("PJSIP/1002", "INUSE")
    changed = await ari.wait_for("DeviceStateChanged")
    assert changed["device_state"] == {"name": "PJSIP/1001", "state": "NOT_INUSE"}
    assert len([e for e in ari.events if e["type"] == "DeviceStateChanged"]) == 1
    assert (await ari.call("GET", "/deviceStates/PJSIP%2F1002"))[1] == {"name": "PJSIP/1002", "state": "INUSE"}
    assert (await ari.call("PUT", "/deviceStates/PJSIP%2F1002", {"deviceState": "BUSY"}))[0] == 409
    assert (await ari.call("PUT", "/deviceStates/Stasis:queue", {"deviceState": "BUSY"}))[0] == 204
    with pytest.raises(ValueError):
        sim.set_device_state("PJSIP/1001", "ASLEEP")


async def test_offline_endpoint_is_unavailable(sim: AsteriskSimulator, ari: AriWire) -> None:
    sim.set_endpoint_state("PJSIP/1001", "online")
    await ari.call("POST", "/applications/b24bridge/subscription", {"eventSource": "endpoint:PJSIP/1001"})
    sim.set_endpoint_state("PJSIP/1001", "offline")
    change = await ari.wait_for("EndpointStateChange")
    assert (change["endpoint"]["resource"], change["endpoint"]["state"]) == ("1001", "offline")
    assert (await ari.call("GET", "/endpoints/PJSIP/1001"))[1]["state"] == "offline"
    assert sim.device_state("PJSIP/1001") == "UNAVAILABLE"
    assert (await ari.call("GET", "/endpoints/PJSIP/9999"))[0] == 404


@pytest.mark.parametrize("path", ["/channels", "/channels/create"])
async def test_a_phone_that_is_not_registered_cannot_even_get_a_channel(
    sim: AsteriskSimulator, ari: AriWire, path: str
) -> None:
    """As on Asterisk 20.20.1 (tests/real): chan_pjsip finds no contact to dial, ARI answers 500 at once and no
    channel exists, so no event follows."""
    sim.set_endpoint_state("PJSIP/1001", "offline")
    sim.set_party("1002", Unregistered())
    for endpoint in ("PJSIP/1001", "PJSIP/1002"):
        params = {"endpoint": endpoint, "app": "b24bridge"}
        assert await ari.call("POST", path, params) == (500, {"error": "Allocation failed"})
    assert (await ari.call("GET", "/channels"))[1] == []
    await asyncio.sleep(0)  # nothing is scheduled either
    assert not [e for e in ari.events if "channel" in e or "peer" in e]


async def test_subscribe_all_sees_what_the_app_alone_does_not(sim: AsteriskSimulator, ari: AriWire) -> None:
    watcher = AriWire(sim.ari_url, "b24bridge", "ari-secret")
    await watcher.open(app="monitor", subscribe_all=True)
    await eventually(lambda: sim.bus.is_active("monitor"))
    call = await sim.place_inbound_call("74951112233", "79161234567", "Иван Петров", hangup_after=0.1)
    await ari.call("POST", "/bridges", {"bridgeId": "br-1"})
    await asyncio.wait_for(call.ended(), 5)
    await watcher.wait_for("ChannelDestroyed", channel_id=call.channel_id)
    await watcher.wait_for("BridgeCreated")
    assert {e["application"] for e in watcher.events} == {"monitor"}
    assert not [e for e in ari.events if e["type"] in ("ChannelCreated", "BridgeCreated", "ChannelDestroyed")]
    await watcher.close()


async def test_a_newer_websocket_replaces_the_older_one(sim: AsteriskSimulator, ari: AriWire) -> None:
    newer = AriWire(sim.ari_url, "b24bridge", "ari-secret")
    await newer.open()
    await ari.wait_for("ApplicationReplaced")
    await sim.place_inbound_call("74951112233", "79161234567")
    await newer.wait_for("StasisStart")
    assert not [e for e in ari.events if e["type"] == "StasisStart"]
    await newer.close()


async def test_the_event_filter_is_the_body_itself_and_holds_back_answers_too(
    sim: AsteriskSimulator, ari: AriWire
) -> None:
    """As on Asterisk 20.20.1 (``tests/real/test_event_filter.py``)."""
    url = "/applications/b24bridge/eventFilter"
    status, app = await ari.call("PUT", url, body={"filter": {"allowed": [{"type": "StasisStart"}]}})
    assert (status, app["events_allowed"], app["events_disallowed"]) == (200, [], [])
    assert (await ari.call("PUT", url, body={"allowed": "StasisStart"}))[0] == 400
    assert (await ari.call("PUT", url, body={"allowed": [{"name": "StasisStart"}]}))[0] == 400
    assert (await ari.call("PUT", "/applications/nobody/eventFilter", body={}))[0] == 404
    status, app = await ari.call("PUT", url, body={"allowed": [{"type": "StasisStart"}]})
    assert (status, app["events_allowed"]) == (200, [{"type": "StasisStart"}])
    assert ari.ws is not None
    await ari.ws.send_str(json.dumps({"type": "RESTRequest", "request_id": "held", "method": "GET",
                                      "uri": "asterisk/ping"}))  # fmt: skip
    call = await sim.place_inbound_call("74951112233", "79161234567")
    started = await ari.wait_for("StasisStart")
    await ari.call("POST", f"/channels/{call.channel_id}/answer")
    await ari.call("POST", f"/channels/{call.channel_id}/variable", {"variable": "X", "value": "1"})
    await asyncio.sleep(0.3)
    assert {e["type"] for e in ari.events} == {"StasisStart"}, "no ChannelVarset, ... and no RESTResponse"
    status, _ = await ari.call("PUT", url, body={"disallowed": [{"type": "ChannelVarset"}]})
    assert status == 200 and sim.bus.apps["b24bridge"].allowed == [{"type": "StasisStart"}], "allowed stays"
    status, app = await ari.call("PUT", url, body={})
    assert (status, app["events_allowed"], app["events_disallowed"]) == (200, [], [])
    await ari.call("DELETE", f"/channels/{started['channel']['id']}")
    await ari.wait_for("StasisEnd")
    assert "ChannelHangupRequest" in {e["type"] for e in ari.events}, "every event comes again"
    assert [e for e in ari.events if e.get("request_id") == "held"] == [], "a held-back answer never comes"


# --- faults, injection, inspection ----------------------------------------------------------
async def test_dropped_websocket_deactivates_the_app_until_it_reconnects(sim: AsteriskSimulator, ari: AriWire) -> None:
    call = await sim.place_inbound_call("74951112233", "79161234567")
    await ari.wait_for("StasisStart")
    await sim.drop_connections(ari=True, ami=False)
    await asyncio.wait_for(ari.closed.wait(), 5)
    await eventually(lambda: not sim.bus.is_active("b24bridge"))
    assert [c["id"] for c in sim.channels()] == [call.caller_channel.id, call.channel_id]
    missed = await sim.place_inbound_call("74951112299", "79161234567")
    await asyncio.wait_for(missed.ended(), 5)  # Stasis() fails without the app: the call is lost
    assert (await ari.call("GET", "/channels"))[0] == 200, "REST works again on a new connection"
    again = AriWire(sim.ari_url, "b24bridge", "ari-secret")
    await again.open()
    _, channels = await again.call("GET", "/channels")
    assert [c["id"] for c in channels] == [call.caller_channel.id, call.channel_id]
    await again.close()


async def test_silent_ari_holds_requests_and_drops_events(sim: AsteriskSimulator, ari: AriWire) -> None:
    sim.go_silent(ami=False, ari=True)
    pending = asyncio.create_task(ari.call("GET", "/channels"))
    await sim.inject_ari_event({"type": "ChannelUserevent", "eventname": "lost"})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(asyncio.shield(pending), 0.2)
    sim.wake()
    assert (await pending) == (200, [])
    await sim.inject_ari_event({"type": "ChannelUserevent", "eventname": "kept"})
    event = await ari.wait_for("ChannelUserevent")
    assert (event["eventname"], event["application"]) == ("kept", "b24bridge")
    assert [e["eventname"] for e in ari.events if e["type"] == "ChannelUserevent"] == ["kept"]


async def test_raw_text_frames_can_be_injected(sim: AsteriskSimulator, ari: AriWire) -> None:
    await sim.inject_ari_text('{"type": "StasisStart", "args": [')
    await sim.inject_ari_text("[1, 2]")
    await eventually(lambda: len(ari.texts) == 2)
    assert ari.texts[0] == '{"type": "StasisStart", "args": ['


async def test_requests_are_logged_without_credentials(sim: AsteriskSimulator) -> None:
    async with aiohttp.ClientSession() as session:
        params = {"api_key": "b24bridge:ari-secret", "endpoint": "PJSIP/1001", "app": "b24bridge"}
        async with session.post(f"{sim.ari_url}/ari/channels", params=params) as resp:
            assert resp.status == 200
    logged = [r for r in sim.requests if r["proto"] == "ari"]
    assert [(r["method"], r["path"], r["params"]) for r in logged] == [
        ("POST", "/ari/channels", {"endpoint": "PJSIP/1001", "app": "b24bridge"})
    ]
    assert logged[0]["at"] > 0
