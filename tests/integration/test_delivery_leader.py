"""Two bridges on one PostgreSQL journal and one portal: only the delivery leader sends, so the portal's bucket is
never overrun, and after ``kill -9`` of the leader's process the other bridge takes over within seconds; every call
of both bridges reaches Bitrix24 exactly once. Real PostgreSQL, the Bitrix24 simulator over real HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import zlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from bridge.config import Bitrix24Settings
from bridge.config.reader import Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.telephony import Telephony
from bridge.delivery import Delivery
from bridge.domain.commands import CallType, CrmFinish, CrmRegister
from bridge.journal import AsyncJournal
from bridge.leadership import Lease, LeaseTiming, Role
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.eventually import eventually
from tests.integration.test_delivery_batching import mirrored_once

ROOT = Path(__file__).resolve().parents[2]
RATE, BURST = 10.0, 20
"""A small bucket: a second sender pacing itself to the full budget would overrun it within a second or two."""
MSK = timezone(timedelta(hours=3))


@pytest.fixture
async def sim() -> AsyncIterator[Bitrix24Simulator]:
    async with Bitrix24Simulator(rate=RATE, burst=BURST) as simulator:
        yield simulator


async def open_journal(url: str, bridge: str) -> AsyncJournal:
    return await AsyncJournal.open_postgres(url, password=os.environ["B24_TEST_PG_PASSWORD"], bridge=bridge)


async def journal_calls(journal: AsyncJournal, prefix: str, calls: int, every: float, stop: asyncio.Event) -> int:
    """A bridge's calls ending one by one (register + finish each), until ``calls`` or ``stop``; how many."""
    for i in range(calls):
        if stop.is_set():
            return i
        leg = f"{prefix}-{i}"
        started = datetime.now(MSK).replace(microsecond=0) - timedelta(seconds=30)
        phone = f"7916{zlib.crc32(leg.encode()) % 10_000_000:07d}"
        await journal.append(CrmRegister(leg, 11, phone, CallType.INCOMING, "74950000001", started, True))
        await journal.append(CrmFinish(leg, 11, 10 + i % 40, "200"))
        await asyncio.sleep(every)
    return calls


async def test_one_leader_sends_for_both_bridges_and_the_other_takes_over_after_kill_9(
    sim: Bitrix24Simulator, pg_url: str, tmp_path: Path
) -> None:
    office_a, office_b = await open_journal(pg_url, "office-a"), await open_journal(pg_url, "office-b")
    with (tmp_path / "leader-a.log").open("wb") as sink:  # the child's log, for a failure's post-mortem
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.leader_child", pg_url, "office-a", sim.webhook_url, str(RATE),
            str(BURST), cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=sink,
        )  # fmt: skip
    settings = Bitrix24Settings(webhook_url=Secret(sim.webhook_url), rate=RATE, burst=BURST, register_timeout=30.0,
                                request_timeout=5.0)  # fmt: skip
    client = Bitrix24Client(settings, retry_attempts=1)
    delivery = Delivery(office_b, client, Telephony(client), settings, retry_base=0.05, retry_cap=0.5)
    lease_b = Lease(pg_url, Role.DELIVERY, client.portal, "office-b", password=os.environ["B24_TEST_PG_PASSWORD"],
                    timing=LeaseTiming(retry=0.2, probe=0.5))  # fmt: skip
    a_stops, b_stops = asyncio.Event(), asyncio.Event()
    tasks: list[asyncio.Task[object]] = []
    try:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"leading\n"
        with capture_logs() as logs:
            tasks.append(asyncio.create_task(lease_b.run(delivery.lead)))
            await eventually(lambda: lease_b.holder == "office-a", message="b waits for the leader, a")
            writers = [asyncio.create_task(journal_calls(office_a, "a", 400, 0.02, a_stops)),
                       asyncio.create_task(journal_calls(office_b, "b", 400, 0.02, b_stops))]  # fmt: skip
            await eventually(lambda: len(sim.state()["calls"]) >= 40, timeout=30, message="the leader sends")
            assert client.stats.requests == 0, "b only journals while a leads"
            child.kill()  # kill -9 the leader's process: a's calls stop with it, b's go on
            a_stops.set()
            await child.wait()
            killed = time.monotonic()
            await eventually(lambda: lease_b.held, timeout=10, message="b takes over")
            took_over = time.monotonic() - killed
            await asyncio.sleep(1.0)  # b's calls keep ending while b leads
            b_stops.set()
            a_calls, b_calls = await asyncio.gather(*writers)
            await eventually(_drained(office_b), timeout=60, message="the shared outbox was not drained")
        assert took_over < 5.0, f"takeover took {took_over:.1f} s"
        mirrored = mirrored_once(sim)
        assert set(mirrored) == {f"a-{i}" for i in range(a_calls)} | {f"b-{i}" for i in range(b_calls)}
        assert sim.state()["counters"]["query_limit_exceeded"] == 0, "the portal's bucket was overrun"
        senders = {op.sent_by for leg in mirrored for op in await office_b.operations(leg)}
        assert senders == {"office-a", "office-b"}, "a sent before it died, b after"
        assert any(e["event"] == "leadership.acquired" and e["bridge"] == "office-b" for e in logs)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
        a_stops.set()
        b_stops.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
        for journal in (office_a, office_b):
            await journal.close()


def _drained(journal: AsyncJournal) -> object:
    async def check() -> bool:
        return await journal.depth() == 0

    return check
