"""One task per call that carries out its PBX commands in order (the dispatcher never waits for the PBX)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from bridge.domain.commands import PbxCommand


class PbxPort(Protocol):
    async def execute(self, call_id: str, cmd: PbxCommand) -> None: ...


class CallExecutor:
    """Runs one call's PBX commands in order, in its own task, so the dispatcher never waits for the PBX."""

    def __init__(self, key: str, pbx: PbxPort, failed: Callable[[str, PbxCommand, Exception], None]) -> None:
        self.key = key
        self.pbx = pbx
        self.failed = failed
        self.queue: asyncio.Queue[PbxCommand | None] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())

    def submit(self, cmd: PbxCommand) -> None:
        self.queue.put_nowait(cmd)

    def close(self) -> None:
        self.queue.put_nowait(None)

    async def drain(self, grace: float) -> None:
        self.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), grace)
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()

    async def _run(self) -> None:
        while (cmd := await self.queue.get()) is not None:
            try:
                await self.pbx.execute(self.key, cmd)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed(self.key, cmd, exc)
