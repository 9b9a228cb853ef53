"""Two bridges, one portal, one PostgreSQL journal: both journal calls at full speed, one delivery leader sends
for both through one leaky bucket. Counted once the portal's bucket is full, as the single-bridge saturation phase.

Each bridge is two processes of its own, as on two machines: its delivery (its requests take their slots from the
portal's budget shared in PostgreSQL, as the daemon's do) and its calls, journaled straight into the shared journal
(the PBX side is measured by the single-bridge phases). The bench's process runs the portal alone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.stack import STANDARD, Bucket
from bridge.crm.pacing import SAFETY_MARGIN
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
    lowest_level: float = 0.0
    """The portal's bucket at its emptiest during the window (in requests; full is the burst less the client's
    safety margin): saturated throughout when it stays about there."""

    @property
    def commands_per_request(self) -> float:
        return self.commands / self.requests if self.requests else 0.0


async def two_bridges(workdir: Path, calls_per_second: float, window: float, warmup: float) -> TwoBridges:
    from tests.pgserver import PASSWORD, PgServer  # the tests' throw-away PostgreSQL (initdb + pg_ctl)

    bucket = STANDARD
    server = await asyncio.to_thread(PgServer.start)
    children: list[asyncio.subprocess.Process] = []
    writers: list[asyncio.subprocess.Process] = []
    try:
        url = server.url(await asyncio.to_thread(server.create_database))
        async with Bitrix24Simulator(rate=bucket.rate, burst=bucket.burst) as crm:
            env = {**os.environ, "B24_BENCH_PG_PASSWORD": PASSWORD}
            workdir.mkdir(parents=True, exist_ok=True)
            for bridge in BRIDGES:
                with (workdir / f"{bridge}.log").open("wb") as sink:
                    children.append(await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "bench.shared_child", "deliver", url, bridge, crm.webhook_url,
                        str(bucket.rate), str(bucket.burst), cwd=ROOT, env=env, stdout=sink, stderr=sink,
                    ))  # fmt: skip
            for bridge in BRIDGES:
                with (workdir / f"{bridge}-calls.log").open("wb") as sink:
                    writers.append(await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "bench.shared_child", "journal", url, bridge, str(calls_per_second),
                        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=sink,
                    ))  # fmt: skip
            children += writers
            saturated = await _full(crm, bucket, warmup)
            before, started = dict(crm.state()["counters"]), time.monotonic()
            lowest = await _lowest_level(crm, window)
            after, measured = dict(crm.state()["counters"]), time.monotonic() - started
            journaled = sum([await _stop_writing(writer) for writer in writers])
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
        saturated=saturated, journaled=journaled, lowest_level=lowest,
    )  # fmt: skip


async def _lowest_level(crm: Bitrix24Simulator, window: float) -> float:
    """Watch the portal's bucket for ``window`` seconds; its lowest level."""
    lowest, end = float(crm.core.bucket.level), time.monotonic() + window
    while (left := end - time.monotonic()) > 0:
        await asyncio.sleep(min(0.05, left))
        lowest = min(lowest, float(crm.core.bucket.level))
    return lowest


async def _stop_writing(writer: asyncio.subprocess.Process) -> int:
    """Stop a bridge's journaling child; how many calls it journaled (0 if it died)."""
    if writer.returncode is None:
        writer.send_signal(signal.SIGTERM)
    out, _ = await writer.communicate()
    return int(out.decode().strip() or 0)


async def _full(crm: Bitrix24Simulator, bucket: Bucket, within: float) -> bool:
    """Wait until the portal's bucket is one request below where the client-side twin stops; False if it did not."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if crm.core.bucket.level >= bucket.burst - SAFETY_MARGIN - 1:
            return True
        await asyncio.sleep(0.05)
    return False
