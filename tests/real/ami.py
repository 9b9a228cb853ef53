"""The test's own AMI connection to a kit instance: actions, and every event kept with the time it arrived.

The arrival times are the PBX's own answer and hang-up times as the test can know them (the events leave
Asterisk as the channel changes state), so Bitrix24's DURATION is judged against them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass

from tests.eventually import eventually
from tests.sim.asterisk_clients import parse_frames


@dataclass(frozen=True)
class Event:
    at: float
    """``time.monotonic()`` when the event arrived."""
    fields: dict[str, str]

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def get(self, key: str, default: str = "") -> str:
        return self.fields.get(key, default)


class Ami:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, name: str) -> None:
        self.reader, self.writer, self.name = reader, writer, name
        self.frames: list[Event] = []
        self._ids = itertools.count(1)
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, port: int, user: str, secret: str, name: str) -> Ami:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()  # the banner
        ami = cls(reader, writer, name)
        answer = await ami.action("Login", Username=user, Secret=secret)
        assert answer.get("Response") == "Success", f"{name} AMI login: {answer}"
        return ami

    async def _read(self) -> None:
        buffer = b""
        with contextlib.suppress(ConnectionError):
            while chunk := await self.reader.read(65536):
                at = time.monotonic()
                buffer += chunk
                complete, _, buffer = buffer.rpartition(b"\r\n\r\n")
                if complete:
                    self.frames.extend(Event(at, dict(frame)) for frame in parse_frames(complete + b"\r\n\r\n"))

    def send(self, action: str, **headers: str) -> str:
        action_id = f"{self.name}-{next(self._ids)}"
        lines = [f"Action: {action}", f"ActionID: {action_id}", *(f"{k}: {v}" for k, v in headers.items())]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return action_id

    async def action(self, action: str, *, within: float = 10.0, **headers: str) -> dict[str, str]:
        """Send an action and return its response."""
        action_id = self.send(action, **headers)

        def answered() -> dict[str, str]:
            found = [f.fields for f in self.frames if f.get("ActionID") == action_id and "Response" in f.fields]
            assert found, f"no response to {action} on {self.name}"
            return found[0]

        return await eventually(answered, timeout=within)

    async def listing(self, action: str, **headers: str) -> list[dict[str, str]]:
        """Send a list action (``CoreShowChannels``, ``DeviceStateList``) and return its events."""
        action_id = self.send(action, **headers)

        def complete() -> tuple[list[dict[str, str]]]:
            mine = [f.fields for f in self.frames if f.get("ActionID") == action_id]
            assert any(f.get("EventList") == "Complete" or f.get("Response") == "Error" for f in mine)
            return ([f for f in mine if "Event" in f and f.get("EventList") != "Complete"],)  # truthy when empty

        return (await eventually(complete, timeout=10.0))[0]

    def events(self, name: str, **match: str) -> list[Event]:
        """Events called ``name`` whose fields start with the given values (``Channel="PJSIP/1002-"``)."""
        return [
            f
            for f in self.frames
            if f.get("Event") == name and all(f.get(key).startswith(value) for key, value in match.items())
        ]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
