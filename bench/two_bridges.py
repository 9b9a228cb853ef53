"""Two bridges, one portal, one PostgreSQL journal: both journal calls at full speed, one delivery leader sends
for both through one leaky bucket. Counted once the portal's bucket is full, as the single-bridge saturation phase.

Each bridge's delivery runs in a process of its own (its client-side bucket is its own, as on two machines); the
calls are journaled straight into each bridge's journal (the PBX side is measured by the single-bridge phases).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.stack import STANDARD, Bucket
from bridge.crm.pacing import SAFETY_MARGIN
from bridge.domain.commands import CallType, CrmFinish, CrmRegister
from bridge.journal import AsyncJournal
from bridge.sim.bitrix24 import Bitrix24Simulator

ROOT = Path(__file__).resolve().parents[1]
BRIDGES = ("office-a", "office-b")


@dataclass
class TwoBridges:
    bucket: Bucket
    offered_rate: float
    """Calls per second each bridge journals (register + finish each)."""
    window: float
    requests: int
    commands: int
    query_limit_exceeded: int
    refused_in_phase: int
    saturated: bool
    journaled: int

    @property
    def commands_per_request(self) -> float:
        return self.commands / self.requests if self.requests else 0.0


async def journal_steadily(journal: AsyncJournal, prefix: str, rate: float) -> int:
    """Ended calls at ``rate`` per second until cancelled; returns how many."""
    count, started = 0, time.monotonic()
    try:
        while True:
            leg = f"{prefix}-{count}"
            begun = datetime.now(UTC) - timedelta(seconds=30)
            async with journal.transaction():
                await journal.append(CrmRegister(leg, 11, f"79{count:09d}", CallType.INCOMING, "74951112255", begun,
                                                 False))  # fmt: skip
                await journal.append(CrmFinish(leg, 11, 20, "200"))
            count += 1
            await asyncio.sleep(max(0.0, started + count / rate - time.monotonic()))
    except asyncio.CancelledError:
        return count


async def two_bridges(workdir: Path, calls_per_second: float, window: float, warmup: float) -> TwoBridges:
    from tests.pgserver import PASSWORD, PgServer  # the tests' throw-away PostgreSQL (initdb + pg_ctl)

    bucket = STANDARD
    server = await asyncio.to_thread(PgServer.start)
    children: list[asyncio.subprocess.Process] = []
    try:
        url = server.url(await asyncio.to_thread(server.create_database))
        async with Bitrix24Simulator(rate=bucket.rate, burst=bucket.burst) as crm:
            env = {**os.environ, "B24_BENCH_PG_PASSWORD": PASSWORD}
            workdir.mkdir(parents=True, exist_ok=True)
            for bridge in BRIDGES:
                with (workdir / f"{bridge}.log").open("wb") as sink:
                    children.append(await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "bench.shared_child", url, bridge, crm.webhook_url, str(bucket.rate),
                        str(bucket.burst), cwd=ROOT, env=env, stdout=sink, stderr=sink,
                    ))  # fmt: skip
            journals = [await AsyncJournal.open_postgres(url, password=PASSWORD, bridge=b) for b in BRIDGES]
            writers = [
                asyncio.create_task(journal_steadily(j, b, calls_per_second))
                for j, b in zip(journals, BRIDGES, strict=True)
            ]
            try:
                saturated = await _full(crm, bucket, warmup)
                before, started = dict(crm.state()["counters"]), time.monotonic()
                await asyncio.sleep(window)
                after, measured = dict(crm.state()["counters"]), time.monotonic() - started
            finally:
                for task in writers:
                    task.cancel()
                journaled = sum(await asyncio.gather(*writers))
                for journal in journals:
                    await journal.close()
            refused = crm.state()["counters"]["query_limit_exceeded"]
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
        await asyncio.to_thread(server.stop)
    return TwoBridges(
        bucket=bucket, offered_rate=calls_per_second, window=measured, requests=after["requests"] - before["requests"],
        commands=after["commands"] - before["commands"],
        query_limit_exceeded=after["query_limit_exceeded"] - before["query_limit_exceeded"], refused_in_phase=refused,
        saturated=saturated, journaled=journaled,
    )  # fmt: skip


async def _full(crm: Bitrix24Simulator, bucket: Bucket, within: float) -> bool:
    """Wait until the portal's bucket is one request below where the client-side twin stops; False if it did not."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if crm.core.bucket.level >= bucket.burst - SAFETY_MARGIN - 1:
            return True
        await asyncio.sleep(0.05)
    return False
