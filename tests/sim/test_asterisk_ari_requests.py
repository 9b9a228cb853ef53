"""RESTRequest frames on the simulator's events WebSocket, answered as Asterisk 20.20.1 answers them (each expected
frame below was seen from the real PBX, see ``bridge/sim/asterisk/ari_requests.py``)."""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path
from typing import Any

import pytest

from bridge.sim.asterisk import Answer, AsteriskSimulator
from tests.eventually import eventually
from tests.sim.asterisk_clients import AriWire

REQ = "RESTRequest"
FIELDS = ("type", "transaction_id", "request_id", "status_code", "reason_phrase", "uri", "application")


async def send(ari: AriWire, frame: dict[str, Any] | str) -> dict[str, Any]:
    """Send one frame; the next RESTResponse that arrives."""
    before = len([e for e in ari.events if e["type"] == "RESTResponse"])
    assert ari.ws is not None
    await ari.ws.send_str(frame if isinstance(frame, str) else json.dumps(frame))
    await eventually(lambda: len([e for e in ari.events if e["type"] == "RESTResponse"]) > before)
    return [e for e in ari.events if e["type"] == "RESTResponse"][before]


def head(response: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(response.get(name) for name in FIELDS)


def body(response: dict[str, Any]) -> Any:
    assert response["content_type"] == "application/json"
    return json.loads(response["message_body"])


async def test_a_request_is_answered_with_its_ids_and_the_uri_without_query(
    sim: AsteriskSimulator, ari: AriWire
) -> None:
    request = {"type": "RESTRequest", "transaction_id": "t1", "request_id": "r1", "method": "POST",
               "uri": "bridges?type=mixing", "query_strings": [{"name": "name", "value": "x y"}]}  # fmt: skip
    answer = await send(ari, request)
    assert head(answer) == ("RESTResponse", "t1", "r1", 200, "OK", "bridges", "b24bridge")
    assert body(answer)["name"] == "x y" and body(answer)["bridge_type"] == "mixing"
    assert answer["asterisk_id"] == sim.bus.asterisk_id and answer["timestamp"]
    ping = await send(ari, {"type": "RESTRequest", "request_id": "r2", "method": "GET", "uri": "asterisk/ping"})
    assert head(ping)[:6] == ("RESTResponse", "", "r2", 200, "OK", "asterisk/ping")
    gone = {"type": "RESTRequest", "request_id": "r3", "method": "DELETE", "uri": f"bridges/{body(answer)['id']}"}
    deleted = await send(ari, gone)
    assert deleted["status_code"] == 204 and "message_body" not in deleted and "content_type" not in deleted
    recorded = [(r["method"], r["path"], r["via"]) for r in sim.requests if r["proto"] == "ari"]
    assert recorded[-1] == ("DELETE", f"/ari/bridges/{body(answer)['id']}", "websocket")


async def test_a_json_body_carries_channel_variables(sim: AsteriskSimulator, ari: AriWire) -> None:
    sim.set_party("1001", Answer(after=0))
    payload = {"endpoint": "PJSIP/1001", "app": "b24bridge", "variables": {"B24": "yes"}}
    request = {"type": "RESTRequest", "request_id": "o1", "method": "POST", "uri": "channels/leg-9",
               "content_type": "application/json", "message_body": json.dumps(payload)}  # fmt: skip
    answer = await send(ari, request)
    assert (answer["status_code"], body(answer)["id"]) == (200, "leg-9")
    assert sim.pbx.channels["leg-9"].variables["B24"] == "yes"


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("not json", (400, "Failed to parse request message JSON", None)),
        ({"request_id": "e1"}, (400, "Bad request", "No 'type' property.")),
        ({"type": "Bogus", "request_id": "e2"}, (400, "Bad request", "Unknown request type.")),
        ({"type": REQ, "method": "GET"}, (400, "Bad request", "Empty or missing 'uri' property.")),
        ({"type": REQ, "method": "FETCH", "uri": "x"}, (400, "Bad request", "Unknown or missing 'method' property.")),
        ({"type": REQ, "method": "GET", "uri": "/asterisk/ping"}, (405, "Method Not Allowed", "Invalid method")),
        ({"type": REQ, "method": "GET", "uri": "bogus/path"}, (404, "Not Found", "Resource not found")),
        ({"type": REQ, "method": "GET", "uri": "channels/nonexist"}, (404, "Not Found", "Channel not found")),
        ({"type": REQ, "method": "POST", "uri": "channels", "message_body": "{}"},
         (400, "Bad request", "No 'content_type' for 'message_body'.")),
    ],
)  # fmt: skip
async def test_bad_requests_get_asterisks_answers(
    ari: AriWire, frame: dict[str, Any] | str, expected: tuple[int, str, str | None]
) -> None:
    answer = await send(ari, frame)
    message = json.loads(answer["message_body"])["message"] if "message_body" in answer else None
    assert (answer["status_code"], answer["reason_phrase"], message) == expected
    assert answer["request_id"] == (frame.get("request_id", "") if isinstance(frame, dict) else "")


async def test_a_file_is_not_served_over_the_socket(sim: AsteriskSimulator, ari: AriWire, tmp_path: Path) -> None:
    with wave.open(str(tmp_path / "rec.wav"), "wb") as audio:
        audio.setnchannels(1), audio.setsampwidth(2), audio.setframerate(8000)
        audio.writeframes(b"\0\0" * 800)
    sim.pbx.media.stored["rec"] = {"format": "wav", "path": tmp_path / "rec.wav", "duration": 0.1}
    request = {"type": "RESTRequest", "request_id": "f1", "method": "GET", "uri": "recordings/stored/rec/file"}
    answer = await send(ari, request)
    assert (answer["status_code"], answer["reason_phrase"]) == (406, "Not Acceptable.  Use HTTP GET")
    assert "message_body" not in answer


async def test_a_pbx_before_20_14_ignores_the_frames(sim: AsteriskSimulator, ari: AriWire) -> None:
    sim.ari_rest_over_websocket = False
    assert ari.ws is not None
    await ari.ws.send_str(
        json.dumps({"type": "RESTRequest", "request_id": "x", "method": "GET", "uri": "asterisk/ping"})
    )
    status, _ = await ari.call("GET", "/asterisk/ping")  # answered after the frame was read
    assert status == 200
    assert not [e for e in ari.events if e["type"] == "RESTResponse"]
    assert [r["via"] for r in sim.requests if r["proto"] == "ari" and r["path"] == "/ari/asterisk/ping"] == ["http"]


async def test_a_prompt_holds_its_channels_queued_operations_and_the_socket_behind_them(
    sim: AsteriskSimulator, ari: AriWire
) -> None:
    """As on Asterisk 20.20.1 (``tests/real/test_ari_over_websocket.py``): answer, addChannel and setChannelVar about a
    channel that plays a prompt wait for its end, and so does every request after them on the socket (HTTP does
    not); the same about another channel are answered at once."""
    sim.pbx.media.media_durations["sound:long"] = 30.0
    calls = [await sim.place_inbound_call("74951112233", f"7916123456{n}") for n in (1, 2)]
    await eventually(lambda: len([e for e in ari.events if e["type"] == "StasisStart"]) == 2)
    caller, other = (call.channel_id for call in calls)
    _, bridge = await ari.call("POST", "/bridges", {"type": "mixing"})
    _, playback = await ari.call("POST", f"/channels/{caller}/play", {"media": "sound:long"})
    await ari.wait_for("PlaybackStarted")
    for request_id, uri in [("o1", f"channels/{other}/answer"), ("o2", f"bridges/{bridge['id']}/addChannel"),
                            ("o3", f"channels/{other}/variable")]:  # fmt: skip
        query = {"o2": [{"name": "channel", "value": other}], "o3": [{"name": "variable", "value": "X"}]}
        frame = {"type": REQ, "request_id": request_id, "method": "POST", "uri": uri,
                 "query_strings": query.get(request_id, [])}  # fmt: skip
        assert (await send(ari, frame))["status_code"] == 204
    assert ari.ws is not None
    for request_id, uri in [("c1", f"channels/{caller}/answer"), ("c2", "asterisk/ping")]:
        method = "GET" if uri == "asterisk/ping" else "POST"
        await ari.ws.send_str(json.dumps({"type": REQ, "request_id": request_id, "method": method, "uri": uri}))
    assert (await ari.call("GET", "/asterisk/ping"))[0] == 200, "HTTP is not held up"
    await asyncio.sleep(0.3)
    assert not [e for e in ari.events if e.get("request_id") in ("c1", "c2")], "the socket's requests waited"
    await ari.call("DELETE", f"/playbacks/{playback['id']}")
    await eventually(lambda: {e.get("request_id") for e in ari.events} >= {"c1", "c2"})
