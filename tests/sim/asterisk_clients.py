"""Minimal wire-level AMI and ARI clients for testing the Asterisk simulator.

They speak the protocols directly (no panoramisk/aioari) so that tests see exactly the bytes and
frames the simulator sends, and can drive it the way the recorded app did.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
from typing import Any

import aiohttp

from tests.eventually import eventually

Frame = list[tuple[str, str]]


def as_dict(frame: Frame) -> dict[str, str]:
    return dict(frame)


def parse_frames(data: bytes) -> list[Frame]:
    """Split raw AMI bytes into frames (CRLF lines, empty line between frames)."""
    frames: list[Frame] = []
    for block in data.split(b"\r\n\r\n"):
        lines = [line for line in block.decode("utf-8").split("\r\n") if line]
        frame = [tuple(line.split(": ", 1)) for line in lines if ": " in line]
        if frame:
            frames.append(frame)  # type: ignore[arg-type]
    return frames


class AmiWire:
    """Raw AMI over TCP: logs in, keeps every frame, sends actions with ActionIDs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.raw = bytearray()
        self.frames: list[Frame] = []
        self.banner = b""
        self._ids = itertools.count(1)
        self._task = asyncio.create_task(self._read())
        self.closed = asyncio.Event()

    @classmethod
    async def connect(cls, host: str, port: int) -> AmiWire:
        reader, writer = await asyncio.open_connection(host, port)
        wire = cls(reader, writer)
        await eventually(lambda: wire.banner)
        return wire

    async def login(self, username: str, secret: str, events: str = "on") -> dict[str, str]:
        return await self.action("Login", Username=username, Secret=secret, Events=events)

    async def _read(self) -> None:
        try:
            while chunk := await self.reader.read(65536):
                self.raw.extend(chunk)
                if not self.banner and b"\r\n" in self.raw:
                    line, _, rest = bytes(self.raw).partition(b"\r\n")
                    self.banner = line
                    self.raw = bytearray(rest)
                while b"\r\n\r\n" in self.raw:
                    block, _, rest = bytes(self.raw).partition(b"\r\n\r\n")
                    self.raw = bytearray(rest)
                    self.frames.extend(parse_frames(block + b"\r\n\r\n"))
        except ConnectionError:
            pass
        finally:
            self.closed.set()

    def send(self, action: str, **headers: str) -> str:
        action_id = f"t-{next(self._ids)}"
        lines = [f"Action: {action}", f"ActionID: {action_id}"] + [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return action_id

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def action(self, action: str, *, within: float = 5.0, **headers: str) -> dict[str, str]:
        action_id = self.send(action, **headers)

        def answered() -> dict[str, str]:
            found = self.response(action_id)
            assert found is not None, f"no response to {action}"
            return found

        return await eventually(answered, timeout=within)

    def response(self, action_id: str) -> dict[str, str] | None:
        for frame in self.frames:
            found = as_dict(frame)
            if found.get("ActionID") == action_id and "Response" in found:
                return found
        return None

    def with_id(self, action_id: str) -> list[Frame]:
        return [f for f in self.frames if as_dict(f).get("ActionID") == action_id]

    def events(self, name: str | None = None) -> list[dict[str, str]]:
        found = [as_dict(f) for f in self.frames if "Event" in as_dict(f)]
        return [e for e in found if name is None or e["Event"] == name]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class AriWire:
    """ARI REST with Basic auth and one events WebSocket collecting every frame as JSON."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base_url = base_url
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self.session = aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"})
        self.events: list[dict[str, Any]] = []
        self.texts: list[str] = []
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def open(self, app: str = "b24bridge", subscribe_all: bool = False) -> None:
        params = {"app": app, "subscribeAll": "true" if subscribe_all else "false"}
        self.ws = await self.session.ws_connect(f"{self.base_url}/ari/events", params=params)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for message in self.ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    self.texts.append(message.data)
                    with contextlib.suppress(ValueError):
                        event = json.loads(message.data)
                        if isinstance(event, dict):
                            self.events.append(event)
        finally:
            self.closed.set()

    async def call(
        self, method: str, path: str, params: dict[str, str] | None = None, body: Any = None
    ) -> tuple[int, Any]:
        async with self.session.request(method, f"{self.base_url}/ari{path}", params=params, json=body) as resp:
            text = await resp.text()
            if resp.content_type != "application/json":
                return resp.status, text or None
            return resp.status, json.loads(text)

    async def wait_for(self, event_type: str, within: float = 5.0, **fields: Any) -> dict[str, Any]:
        """The first event of ``event_type`` whose fields (``channel_name=...`` allowed) match."""

        def matching() -> dict[str, Any]:
            for event in self.events:
                if event["type"] == event_type and _matches(event, fields):
                    return event
            raise AssertionError(f"no {event_type} event with {fields}")

        return await eventually(matching, timeout=within)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self.session.close()


def _matches(event: dict[str, Any], fields: dict[str, Any]) -> bool:
    for key, wanted in fields.items():
        if key == "channel_name":
            if not event.get("channel", {}).get("name", "").startswith(wanted):
                return False
        elif key == "peer_name":
            if not event.get("peer", {}).get("name", "").startswith(wanted):
                return False
        elif key == "channel_id":
            if event.get("channel", {}).get("id") != wanted:
                return False
        elif event.get(key) != wanted:
            return False
    return True
