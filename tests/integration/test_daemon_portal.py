"""The portal watch: after delivery had trouble, operations waiting out a long back-off are retried as soon as
Bitrix24 answers a probe again, and not before."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, cast

from bridge.crm.client import Bitrix24Client
from bridge.crm.errors import TransientCrmError
from bridge.portal import PortalUpkeep
from bridge.sim.stage import stage
from tests.eventually import eventually


class Backlog:
    def __init__(self) -> None:
        self.due_in: float | None = 100.0
        self.retried = 0

    def next_due(self, register_timeout: float) -> float | None:
        return None if self.due_in is None else time.time() + self.due_in

    def retry_now(self) -> int:
        self.retried += 1
        self.due_in = 0.0
        return 3


class Probe:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[str] = []

    async def call(self, method: str, params: Any = None) -> Any:
        self.calls.append(method)
        if len(self.calls) <= self.failures:
            raise TransientCrmError(method, "NETWORK_ERROR", "Server disconnected")
        return {"ID": 1}


async def test_waiting_operations_are_retried_when_the_portal_answers_again(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:  # a real settings object and directory; the probe and backlog are fakes
        backlog, probe, woken = Backlog(), Probe(failures=2), asyncio.Event()
        watch = PortalUpkeep(
            s.settings, s.daemon.client, cast(Bitrix24Client, probe), s.daemon.directory, s.daemon.gate,
            on_event=s.daemon.desk.on_parsed, on_availability=lambda found: None, backlog=backlog,
            backlog_due=woken.set, handler_url=lambda: "", probe_interval=0.01,
        )  # fmt: skip
        task = asyncio.create_task(watch.watch_for_return())
        try:
            await asyncio.sleep(0.1)
            assert probe.calls == [], "no trouble seen: nothing to watch for"
            watch.trouble()
            await asyncio.wait_for(woken.wait(), 2)
            assert probe.calls == ["profile"] * 3 and backlog.retried == 1
            await asyncio.sleep(0.1)
            assert len(probe.calls) == 3, "the portal is back: no more probes until the next trouble"
        finally:
            task.cancel()


async def test_no_probe_while_delivery_retries_soon_by_itself(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        backlog, probe = Backlog(), Probe(failures=0)
        backlog.due_in = 0.001
        watch = PortalUpkeep(
            s.settings, s.daemon.client, cast(Bitrix24Client, probe), s.daemon.directory, s.daemon.gate,
            on_event=s.daemon.desk.on_parsed, on_availability=lambda found: None, backlog=backlog,
            backlog_due=lambda: None, handler_url=lambda: "", probe_interval=0.01,
        )  # fmt: skip
        task = asyncio.create_task(watch.watch_for_return())
        try:
            watch.trouble()
            await asyncio.sleep(0.1)
            assert probe.calls == [] and backlog.retried == 0
            backlog.due_in = 50.0
            await eventually(lambda: backlog.retried == 1, timeout=2)
        finally:
            task.cancel()
