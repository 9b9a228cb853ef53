"""Shared pieces of the PBX adapter tests: the simulator, settings for it, a running link, collected events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Protocol

import pytest

from bridge.config import AsteriskSettings, Secret
from bridge.pbx.events import PbxEvent
from bridge.sim.asterisk.simulator import AsteriskSimulator
from tests.eventually import eventually

ARI_PASSWORD = "p&ss#1 ?=%+/"
"""Every character that breaks an unescaped query string."""
AMI_SECRET = "ami-secret"


@pytest.fixture
async def sim() -> AsyncIterator[AsteriskSimulator]:
    async with AsteriskSimulator(ari_password=ARI_PASSWORD, ami_secret=AMI_SECRET) as simulator:
        yield simulator


def settings_for(sim: AsteriskSimulator, **changes: Any) -> AsteriskSettings:
    base = AsteriskSettings(
        ari_url=sim.ari_url,
        ari_password=Secret(ARI_PASSWORD),
        ami_host=sim.ami_host,
        ami_port=sim.ami_port,
        ami_secret=Secret(AMI_SECRET),
        agent_endpoint="Local/{ext}@agents",
        trunk_endpoint="Local/{number}@external",
        device="Local/{ext}@phones",
        reconnect_max_delay=0.2,
    )
    return replace(base, **changes)


class Link(Protocol):
    connected: bool
    retry_initial: float

    async def run(self) -> None: ...

    async def stop(self) -> None: ...


@asynccontextmanager
async def running(link: Link) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``link`` until the block ends; wait for its first connection."""
    link.retry_initial = 0.05
    task = asyncio.create_task(link.run())
    try:
        await eventually(lambda: link.connected or task.done(), timeout=5)
        yield task
    finally:
        await link.stop()
        await asyncio.wait_for(task, 5)


class Events:
    """Collects what a link puts on its queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[PbxEvent] = asyncio.Queue()
        self.seen: list[PbxEvent] = []

    def all(self) -> list[PbxEvent]:
        while not self.queue.empty():
            self.seen.append(self.queue.get_nowait())
        return self.seen

    def of(self, *kinds: type) -> list[PbxEvent]:
        return [event for event in self.all() if isinstance(event.event, kinds)]

    async def wait(self, *kinds: type, count: int = 1, within: float = 5.0) -> list[PbxEvent]:
        """The events of ``kinds`` once there are at least ``count`` of them."""

        def enough() -> list[PbxEvent]:
            found = self.of(*kinds)
            return found if len(found) >= count else []

        return await eventually(enough, timeout=within, message=f"{count} x {kinds} not seen in {within} s")
