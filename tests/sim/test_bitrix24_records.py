"""attachRecord in all three modes, the upload URL, and attachTranscription."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from aiohttp import FormData, web

from tests.sim.b24_support import Rest, local_server, rest_fixture, sim_fixture  # noqa: F401

NOT_FINISHED = "Call is not found in the statistic table. It looks like it is not finished yet."
AUDIO = b"ID3\x03\x00fake-mp3-frames" * 20


async def _finished_call(rest: Rest) -> str:
    call_id = await rest.register(EXTERNAL_CALL_ID="rec-1")
    status, _ = await rest.finish(call_id, DURATION=42)
    assert status == 200
    return call_id


def _record_state(rest: Rest, call_id: str) -> Any:
    call = next(c for c in rest.sim.state()["calls"] if c["CALL_ID"] == call_id)
    return call.get("record")


async def test_attach_record_only_after_finish(rest: Rest) -> None:
    call_id = await rest.register()
    payload = {"CALL_ID": call_id, "FILENAME": "a.mp3", "FILE_CONTENT": base64.b64encode(AUDIO).decode()}
    status, body = await rest.call("telephony.externalCall.attachRecord", payload)
    assert (status, body) == (400, {"error": "", "error_description": NOT_FINISHED})
    assert _record_state(rest, call_id) is None


async def test_base64_mode_stores_and_a_repeat_replaces(rest: Rest) -> None:
    call_id = await _finished_call(rest)
    first = await rest.result(
        "telephony.externalCall.attachRecord",
        {"CALL_ID": call_id, "FILENAME": "call.mp3", "FILE_CONTENT": base64.b64encode(AUDIO).decode()},
    )
    assert isinstance(first["FILE_ID"], int)
    assert _record_state(rest, call_id) == {"name": "call.mp3", "size": len(AUDIO)}
    wav = b"RIFF----WAVEfmt " + bytes(100)
    # base64 with MIME line breaks is accepted, as PHP's strict base64_decode skips whitespace
    second = await rest.result(
        "telephony.externalCall.attachRecord",
        {"CALL_ID": call_id, "FILENAME": "call.WAV", "FILE_CONTENT": base64.encodebytes(wav).decode()},
    )
    assert second["FILE_ID"] != first["FILE_ID"]
    assert rest.sim.record_content(call_id) == wav
    stats = await rest.result("voximplant.statistic.get", {"FILTER": {"CALL_ID": call_id}})
    assert stats[0]["RECORD_FILE_ID"] == second["FILE_ID"]
    async with rest.session.get(stats[0]["CALL_RECORD_URL"]) as response:
        assert await response.read() == wav


async def test_attach_record_validation_texts(rest: Rest) -> None:
    call_id = await _finished_call(rest)
    encoded = base64.b64encode(AUDIO).decode()
    cases = [
        (
            {"FILENAME": "call.ogg", "FILE_CONTENT": encoded},
            "ERROR_CORE",
            "Wrong file extension. Only wav and mp3 are allowed",
        ),
        (
            {"FILENAME": "mp3", "FILE_CONTENT": encoded},
            "ERROR_CORE",
            "Wrong file extension. Only wav and mp3 are allowed",
        ),
        ({"FILENAME": "", "FILE_CONTENT": encoded}, "ERROR_CORE", "File name is empty"),
        ({"FILENAME": "a.mp3", "FILE_CONTENT": ""}, "ERROR_CORE", "File content is empty."),
        (
            {"FILENAME": "a.mp3", "FILE_CONTENT": "not*base64!"},
            "ERROR_CORE",
            "File content is not properly encoded. Base64 encoding is expected.",
        ),
        ({}, "", "Required parameters are not set. Request should contain either URL or FILENAME parameter"),
    ]
    for fields, code, text in cases:
        status, body = await rest.call("telephony.externalCall.attachRecord", {"CALL_ID": call_id, **fields})
        assert (status, body) == (400, {"error": code, "error_description": text}), fields
    assert _record_state(rest, call_id) is None


async def test_upload_url_mode_through_webhook_and_oauth(rest: Rest) -> None:
    call_id = await _finished_call(rest)
    result = await rest.result("telephony.externalCall.attachRecord", {"CALL_ID": call_id, "FILENAME": "up.mp3"})
    assert result["fieldName"] == "file" and "token=telephony%7C" in result["uploadUrl"]
    form = FormData()
    form.add_field("file", AUDIO, filename="up.mp3", content_type="audio/mpeg")
    async with rest.session.post(result["uploadUrl"], data=form) as response:
        assert response.status == 200
        assert isinstance((await response.json())["result"]["FILE_ID"], int)
    assert _record_state(rest, call_id) == {"name": "up.mp3", "size": len(AUDIO)}
    form = FormData()
    form.add_field("file", AUDIO, filename="up.mp3")
    async with rest.session.post(result["uploadUrl"], data=form) as response:
        assert response.status == 400  # an upload URL works once

    token = rest.sim.issue_tokens()["access_token"]
    _, body = await rest.oauth("telephony.externalCall.attachRecord", token, {"CALL_ID": call_id, "FILENAME": "o.wav"})
    assert f"auth={token}" in body["result"]["uploadUrl"]
    form = FormData()
    form.add_field("file", b"RIFFdata", filename="o.wav")
    async with rest.session.post(body["result"]["uploadUrl"], data=form) as response:
        assert response.status == 200
    assert _record_state(rest, call_id) == {"name": "o.wav", "size": 8}


async def test_upload_mode_is_refused_inside_batch_but_base64_is_not(rest: Rest) -> None:
    call_id = await _finished_call(rest)
    encoded = quote(base64.b64encode(AUDIO).decode(), safe="")
    attach = f"telephony.externalCall.attachRecord?CALL_ID={call_id}&FILENAME=x.mp3"
    batch = await rest.result(
        "batch",
        {
            "halt": 0,
            "cmd": {
                "upload": attach,
                "inline": f"{attach}&FILE_CONTENT={encoded}",
            },
        },
    )
    assert batch["result_error"]["upload"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"
    assert isinstance(batch["result"]["inline"]["FILE_ID"], int)


async def test_record_url_mode_downloads_the_file(rest: Rest) -> None:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(body=AUDIO)

    call_id = await _finished_call(rest)
    async with local_server([web.get("/records/r1.mp3", serve)]) as base:
        result = await rest.result(
            "telephony.externalCall.attachRecord", {"CALL_ID": call_id, "RECORD_URL": f"{base}/records/r1.mp3"}
        )
        assert isinstance(result["FILE_ID"], int)
        assert _record_state(rest, call_id) == {"name": "r1.mp3", "size": len(AUDIO)}
        status, body = await rest.call(
            "telephony.externalCall.attachRecord", {"CALL_ID": call_id, "RECORD_URL": f"{base}/records/gone.mp3"}
        )
        assert (status, body["error_description"]) == (400, "Server returns HTTP error code 404")
    assert rest.sim.record_content(call_id) == AUDIO


async def test_attach_transcription_after_finish(rest: Rest) -> None:
    messages = [
        {"SIDE": "User", "START_TIME": 0, "STOP_TIME": 3, "MESSAGE": "Hello"},
        {"SIDE": "Client", "START_TIME": 3, "STOP_TIME": 5, "MESSAGE": "Hi"},
    ]
    active = await rest.register(EXTERNAL_CALL_ID="t-0")
    status, body = await rest.call("telephony.call.attachTranscription", {"CALL_ID": active, "MESSAGES": messages})
    assert (status, body["error_description"]) == (400, f"Call {active} is not found. Is it finished?")
    call_id = await _finished_call(rest)
    for bad, text in [
        ("nope", "MESSAGES should be an array"),
        ([{**messages[0], "SIDE": "Robot"}], "MESSAGES[0][SIDE] should be either Client or User"),
        ([messages[0], {**messages[1], "STOP_TIME": 0}], "MESSAGES[1][STOP_TIME] should be greater than zero"),
        ([{**messages[0], "MESSAGE": ""}], "MESSAGES[0][MESSAGE] is empty"),
    ]:
        status, body = await rest.call("telephony.call.attachTranscription", {"CALL_ID": call_id, "MESSAGES": bad})
        assert (status, body["error_description"]) == (400, text)
    result = await rest.result("telephony.call.attachTranscription", {"CALL_ID": call_id, "MESSAGES": messages})
    stats = await rest.result("voximplant.statistic.get", {"FILTER": {"CALL_ID": call_id}})
    assert stats[0]["TRANSCRIPT_ID"] == str(result["TRANSCRIPT_ID"])
