"""REST over the events WebSocket on a real Asterisk 20.20.1: the PBX facts that decide where ``answer``/
``addChannel``/``setChannelVar`` go: on a channel that plays a prompt they wait for its end, and so does every
request queued after them on the socket; on any other channel they are answered at once. (That ``auto`` takes the
socket and a walk mirrors over it: ``test_inbound.py``.)"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from tests.eventually import eventually
from tests.real.ami import Ami
from tests.real.site import RealPbx

PAIR = "74951110001"


class Wire:
    """The events socket of app ``b24bridge`` with RESTRequests on it, and plain HTTP beside it."""

    def __init__(self, session: aiohttp.ClientSession, base: str, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.session, self.base, self.socket = session, base, socket
        self.frames: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.socket:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.frames.append(json.loads(message.data))

    def send(self, method: str, uri: str) -> str:
        request_id = f"r{next(self._ids)}"
        frame = {"type": "RESTRequest", "request_id": request_id, "method": method, "uri": uri}
        asyncio.get_running_loop().create_task(self.socket.send_str(json.dumps(frame)))
        return request_id

    def index(self, kind: str, **fields: str) -> int:
        for n, frame in enumerate(self.frames):
            if frame.get("type") == kind and all(frame.get(k) == v for k, v in fields.items()):
                return n
        raise AssertionError(f"no {kind} {fields} yet")

    async def http(self, method: str, path: str, **params: str) -> Any:
        async with self.session.request(method, f"{self.base}/ari/{path}", params=params) as response:
            assert response.status < 300, (response.status, await response.text())
            return await response.json() if response.content_type == "application/json" else None


@contextlib.asynccontextmanager
async def wire(pbx: RealPbx) -> AsyncIterator[Wire]:
    base = f"http://127.0.0.1:{pbx.kit.ports.pbx_http}"
    token = base64.b64encode(f"b24bridge:{pbx.secrets.ari_password}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as session:
        socket = await session.ws_connect(f"{base}/ari/events", params={"app": "b24bridge"})
        # every message, whatever filter a bridge's link left on the application (the app outlives its socket)
        async with session.put(f"{base}/ari/applications/b24bridge/eventFilter", json={}) as reset:
            assert reset.status == 200, await reset.text()
        w = Wire(session, base, socket)
        try:
            yield w
        finally:
            await socket.close()
            w._reader.cancel()


async def place_caller(ami: Ami) -> None:
    """A customer calls the pair's line through the sample dialplan and stays a minute (it enters our Stasis app)."""
    answer = await ami.action(
        "Originate", Channel=f"Local/{PAIR}@from-trunk", Context="callers", Exten="s", Priority="1",
        CallerID='"Customer" <79990000202>', Timeout="30000", Async="true", Variable="CALLER_HANGUP_AFTER=60",
    )  # fmt: skip
    assert answer.get("Response") == "Success", answer


async def test_a_prompt_holds_answer_and_add_channel_and_the_socket_behind_them(real_pbx: RealPbx) -> None:
    kit = real_pbx.kit
    ami = await Ami.connect(kit.ports.pbx_ami, kit.ami_user, kit.ami_secret, "pbx")
    try:
        async with wire(real_pbx) as w:
            await place_caller(ami)
            await eventually(lambda: w.index("StasisStart") >= 0, timeout=15)
            channel = w.frames[w.index("StasisStart")]["channel"]["id"]
            await w.http("POST", f"channels/{channel}/answer")
            bridge = await w.http("POST", "bridges", type="mixing")
            playback = await w.http("POST", f"channels/{channel}/play", media="sound:tt-monkeys")  # 16 s
            await eventually(lambda: w.index("PlaybackStarted") >= 0, timeout=10)
            waiting = [w.send("POST", f"channels/{channel}/answer"),
                       w.send("POST", f"bridges/{bridge['id']}/addChannel?channel={channel}"),
                       w.send("GET", "asterisk/ping")]  # fmt: skip
            assert (await w.http("GET", "asterisk/ping"))["ping"] == "pong"  # HTTP is not held up
            await asyncio.sleep(1.0)
            assert not [f for f in w.frames if f.get("type") == "RESTResponse"], "the socket's requests waited"
            stopped = len(w.frames)  # the prompt is stopped here: the socket's answers come only after it
            await w.http("DELETE", f"playbacks/{playback['id']}")
            for request_id in waiting:
                await eventually(lambda rid=request_id: w.index("RESTResponse", request_id=rid) >= 0, timeout=10)
            assert all(w.index("RESTResponse", request_id=rid) >= stopped for rid in waiting)
            assert [w.frames[w.index("RESTResponse", request_id=rid)]["status_code"] for rid in waiting] == [
                204, 204, 200
            ]  # fmt: skip
            await w.http("DELETE", f"channels/{channel}")
            await w.http("DELETE", f"bridges/{bridge['id']}")
    finally:
        await ami.close()


async def test_a_prompt_holds_only_its_own_channel(real_pbx: RealPbx) -> None:
    """What lets an agent's leg (the bridge never plays or records on one) take the socket: while the caller plays
    a prompt in the bridge, answering another channel, adding it to that bridge and setting its variable over the
    socket are answered at once."""
    kit = real_pbx.kit
    ami = await Ami.connect(kit.ports.pbx_ami, kit.ami_user, kit.ami_secret, "pbx")
    try:
        async with wire(real_pbx) as w:
            for _ in range(2):
                await place_caller(ami)
            starts = lambda: [f["channel"]["id"] for f in w.frames if f.get("type") == "StasisStart"]  # noqa: E731
            await eventually(lambda: len(starts()) == 2, timeout=15)
            caller, other = starts()
            await w.http("POST", f"channels/{caller}/answer")
            bridge = await w.http("POST", "bridges", type="mixing")
            await w.http("POST", f"bridges/{bridge['id']}/addChannel", channel=caller)
            playback = await w.http("POST", f"channels/{caller}/play", media="sound:tt-monkeys")  # 16 s
            await eventually(lambda: w.index("PlaybackStarted") >= 0, timeout=10)
            asked = [w.send("POST", f"channels/{other}/answer"),
                     w.send("POST", f"bridges/{bridge['id']}/addChannel?channel={other}"),
                     w.send("POST", f"channels/{other}/variable?variable=B24_ANSWERED&value=1700000000.5"),
                     w.send("GET", "asterisk/ping")]  # fmt: skip
            for request_id in asked:
                await eventually(lambda rid=request_id: w.index("RESTResponse", request_id=rid) >= 0, timeout=8)
            assert not [f for f in w.frames if f.get("type") == "PlaybackFinished"], "the answers waited for the prompt"
            assert [w.frames[w.index("RESTResponse", request_id=rid)]["status_code"] for rid in asked] == [
                204, 204, 204, 200
            ]  # fmt: skip
            kept = await w.http("GET", f"channels/{other}/variable", variable="B24_ANSWERED")
            assert kept["value"] == "1700000000.5"
            await w.http("DELETE", f"playbacks/{playback['id']}")
            for channel in (caller, other):
                await w.http("DELETE", f"channels/{channel}")
            await w.http("DELETE", f"bridges/{bridge['id']}")
    finally:
        await ami.close()
