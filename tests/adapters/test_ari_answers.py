"""What a RESTResponse over the events WebSocket gives the caller of ``AriRest.request``: the body's JSON, None, or
the PbxError that HTTP would give (the answer is read in place in ``AriRest.request`` and by ``_answer``)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from bridge.config import load_config
from bridge.pbx.ari_rest import AriRest, _Route
from bridge.pbx.ari_socket import SocketRest
from bridge.pbx.events import PbxError
from tests.fuzz.strategies import EXAMPLE_CONFIG


class AnsweringSocket:
    """Answers each RESTRequest frame with ``answer`` (plus its request id), as the PBX would, a moment later."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer
        self.rest: SocketRest | None = None
        self.frames: list[dict[str, Any]] = []

    async def send_frame(self, data: bytes, _opcode: object) -> None:
        frame = orjson.loads(data)
        self.frames.append(frame)
        reply = {"type": "RESTResponse", "request_id": frame["request_id"], **self.answer}
        assert self.rest is not None
        asyncio.get_running_loop().call_soon(self.rest.take, reply)


async def ask(answer: dict[str, Any]) -> Any:
    rest = AriRest(load_config(EXAMPLE_CONFIG).asterisk)
    socket = AnsweringSocket(answer)
    rest.over_socket = socket.rest = SocketRest(socket, ready=True)  # type: ignore[arg-type]
    params = [("channelId", "path", True)]
    rest._routes["channels", "get"] = _Route(("channels", "get"), "GET", "channels/{channelId}", params)
    result = await rest.request("channels", "get", channelId="c-1")
    assert [frame["uri"] for frame in socket.frames] == ["channels/c-1"]
    assert not rest.over_socket.pending
    return result


async def test_a_json_body_is_the_answer() -> None:
    body = {"id": "c-1", "state": "Up"}
    assert await ask({"status_code": 200, "message_body": orjson.dumps(body).decode()}) == body


@pytest.mark.parametrize("answer", [{"status_code": 204}, {"status_code": 204, "message_body": ""},
                                    {"status_code": 200, "message_body": None}])  # fmt: skip
async def test_no_body_is_none(answer: dict[str, Any]) -> None:
    assert await ask(answer) is None


@pytest.mark.parametrize(
    ("answer", "status", "reason"),
    [
        ({"status_code": 200, "message_body": "{not json"}, 200, "answer is not JSON"),
        ({"status_code": 404, "message_body": '{"message": "Channel not found"}'}, 404, "Channel not found"),
        ({"status_code": 500, "reason_phrase": "Internal Server Error"}, 500, "Internal Server Error"),
        ({"status_code": "200", "message_body": "{}"}, 0, "{}"),  # a body without a message is the reason
        ({"message_body": "", "reason_phrase": "odd"}, 0, "odd"),
    ],
)
async def test_errors_are_pbx_errors_with_status_and_reason(answer: dict[str, Any], status: int, reason: str) -> None:
    with pytest.raises(PbxError) as failed:
        await ask(answer)
    assert (failed.value.status, failed.value.body, failed.value.action) == (status, reason, "channels.get")


async def test_an_answer_after_its_request_timed_out_is_taken_quietly() -> None:
    """The timer failed the request; its answer arrives before the request resumed: nothing breaks, nothing is kept."""
    rest = SocketRest(AnsweringSocket({}), ready=True)  # type: ignore[arg-type]
    request_id, waiter, _frame = rest.submit("GET", "asterisk/ping", [], None, "asterisk.ping", 10.0)
    waiter.set_exception(TimeoutError())
    assert rest.take({"type": "RESTResponse", "request_id": request_id, "status_code": 200})
    assert not rest.pending
    with pytest.raises(TimeoutError):
        await waiter


class StrSocket(AnsweringSocket):
    """An aiohttp older than 3.11: text frames go as str (``send_str``); there is no ``send_frame``."""

    async def send_str(self, data: str) -> None:
        await super().send_frame(data.encode(), None)

    def __getattribute__(self, name: str) -> Any:
        if name == "send_frame":
            raise AttributeError(name)
        return super().__getattribute__(name)


async def test_an_aiohttp_without_send_frame_sends_str(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bridge.pbx.ari_socket.BYTE_FRAMES", False)
    rest = AriRest(load_config(EXAMPLE_CONFIG).asterisk)
    socket = StrSocket({"status_code": 200, "message_body": '{"ok": true}'})
    rest.over_socket = socket.rest = SocketRest(socket, ready=True)  # type: ignore[arg-type]
    rest._routes["asterisk", "ping"] = _Route(("asterisk", "ping"), "GET", "asterisk/ping", [])
    assert await rest.request("asterisk", "ping") == {"ok": True}
    assert await socket.rest.request("GET", "asterisk/ping", [], None, "asterisk.ping", 5.0) == {
        "type": "RESTResponse", "request_id": "2", "status_code": 200, "message_body": '{"ok": true}'
    }  # fmt: skip
    await socket.rest.probe()
    assert [frame["request_id"] for frame in socket.frames] == ["1", "2", "3"]
