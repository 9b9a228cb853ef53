"""The portal watch: after delivery had trouble, operations waiting out a long back-off are retried as soon as
Bitrix24 answers a probe again, and not before; while it stays down the probes back off."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any, cast

from structlog.testing import capture_logs

from bridge.crm.client import Bitrix24Client
from bridge.crm.errors import TransientCrmError
from bridge.portal import PortalUpkeep
from bridge.sim.stage import stage
from tests.eventually import eventually


class Backlog:
    def __init__(self) -> None:
        self.due_in: float | None = 100.0
        self.retried = 0

    async def next_due(self, register_timeout: float) -> float | None:
        return None if self.due_in is None else time.time() + self.due_in

    async def retry_now(self) -> int:
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
            backlog_due=woken.set, probe_interval=0.01,
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
            backlog_due=lambda: None, probe_interval=0.01,
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


class TimedProbe(Probe):
    def __init__(self, failures: int) -> None:
        super().__init__(failures)
        self.times: list[float] = []

    async def call(self, method: str, params: Any = None) -> Any:
        self.times.append(time.monotonic())
        return await super().call(method, params)


async def test_while_the_portal_stays_down_the_probes_back_off_and_say_when_the_next_is_due(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        backlog, probe, woken = Backlog(), TimedProbe(failures=6), asyncio.Event()
        watch = PortalUpkeep(
            s.settings, s.daemon.client, cast(Bitrix24Client, probe), s.daemon.directory, s.daemon.gate,
            on_event=s.daemon.desk.on_parsed, on_availability=lambda found: None, backlog=backlog,
            backlog_due=woken.set, probe_interval=0.05, probe_max_interval=0.4,
        )  # fmt: skip
        task = asyncio.create_task(watch.watch_for_return())
        try:
            with capture_logs() as logs:
                watch.trouble()
                await asyncio.wait_for(woken.wait(), 5)
        finally:
            task.cancel()
    assert len(probe.times) == 7 and backlog.retried == 1, "the first probe that is answered resumes delivery"
    gaps = [later - earlier for earlier, later in itertools.pairwise(probe.times)]
    planned = [min(0.05 * 2**n, 0.4) for n in range(6)]  # 0.05, 0.1, 0.2, 0.4 (capped), 0.4, 0.4
    assert all(plan - 0.005 <= gap < plan + 0.05 + 0.1 for gap, plan in zip(gaps, planned, strict=True)), gaps
    failed = [entry for entry in logs if entry["event"] == "crm.probe_failed"]
    assert [entry["probes"] for entry in failed] == list(range(1, 7))
    assert all(entry["next_probe_in"] <= 0.5 and entry["next_probe_at"].endswith("+00:00") for entry in failed)
    assert [entry["operations"] for entry in logs if entry["event"] == "crm.back"] == [3]


async def test_after_the_portal_is_back_the_next_trouble_is_probed_quickly_again(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        backlog, probe = Backlog(), TimedProbe(failures=6)
        watch = PortalUpkeep(
            s.settings, s.daemon.client, cast(Bitrix24Client, probe), s.daemon.directory, s.daemon.gate,
            on_event=s.daemon.desk.on_parsed, on_availability=lambda found: None, backlog=backlog,
            backlog_due=lambda: None, probe_interval=0.02, probe_max_interval=5.0,
        )  # fmt: skip
        task = asyncio.create_task(watch.watch_for_return())
        try:
            watch.trouble()
            await eventually(lambda: backlog.retried == 1, timeout=5)  # 5 failed probes: the gap reached 0.64 s
            probe.failures = len(probe.calls) + 1  # the portal goes down again
            backlog.due_in = 100.0
            troubled = time.monotonic()
            watch.trouble()
            await eventually(lambda: backlog.retried == 2, timeout=5)
        finally:
            task.cancel()
    after_trouble = [moment - troubled for moment in probe.times if moment > troubled]
    assert len(after_trouble) == 2
    assert after_trouble[1] < 0.02 * 3 + 0.1, "the back-off started again from the first gap"


async def test_probes_against_a_real_outage_back_off_and_delivery_resumes_soon_after_it(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        backlog, woken = Backlog(), asyncio.Event()
        async with Bitrix24Client(s.settings.bitrix24, retry_attempts=1) as probe_client:
            watch = PortalUpkeep(
                s.settings, s.daemon.client, probe_client, s.daemon.directory, s.daemon.gate,
                on_event=s.daemon.desk.on_parsed, on_availability=lambda found: None, backlog=backlog,
                backlog_due=woken.set, probe_interval=0.02, probe_max_interval=0.3,
            )  # fmt: skip
            task = asyncio.create_task(watch.watch_for_return())
            try:
                s.crm.set_fault(outage_seconds=1.5)
                outage_ends = time.monotonic() + 1.5
                watch.trouble()
                await asyncio.wait_for(woken.wait(), 5)
                resumed = time.monotonic()
            finally:
                task.cancel()
    probes = [r for r in s.crm.state()["requests"] if r["method"] == "profile"]
    assert 4 <= len(probes) <= 12, f"{len(probes)} probes in 1.5 s (75 at a fixed 0.02 s)"
    assert resumed - outage_ends < 0.3 + 0.02 + 0.3, "at most one capped gap after the portal came back"
