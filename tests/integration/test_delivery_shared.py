"""Delivery from a shared PostgreSQL journal (a real server): the calls of two bridges go out in the same batches,
each exactly once, even while two senders drain the outbox at the same time (a leader and the one taking over).
Against the Bitrix24 simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest

from bridge.crm.client import Bitrix24Client
from bridge.crm.telephony import Telephony
from bridge.delivery import Delivery, loop
from bridge.domain.commands import CallType, CrmFinish, CrmRegister
from bridge.journal import AsyncJournal
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.eventually import eventually
from tests.integration.test_delivery_batching import BURST, RATE, mirrored_once, settings_for

MSK = timezone(timedelta(hours=3))


@pytest.fixture
async def sim() -> AsyncIterator[Bitrix24Simulator]:
    async with Bitrix24Simulator(rate=RATE, burst=BURST) as simulator:
        yield simulator


async def open_journal(url: str, bridge: str) -> AsyncJournal:
    return await AsyncJournal.open_postgres(url, password=os.environ["B24_TEST_PG_PASSWORD"], bridge=bridge)


async def journal_calls(journal: AsyncJournal, prefix: str, calls: int) -> None:
    started = datetime.now(MSK).replace(microsecond=0) - timedelta(minutes=10)
    for i in range(calls):
        leg = f"{prefix}-{i}"
        phone = f"7916{zlib.crc32(leg.encode()) % 10_000_000:07d}"
        await journal.append(CrmRegister(leg, 11, phone, CallType.INCOMING, "74950000001", started, True))
        await journal.append(CrmFinish(leg, 11, 20 + i % 40, "200"))


async def test_two_senders_on_one_outbox_send_every_call_of_two_bridges_once(
    sim: Bitrix24Simulator, pg_url: str
) -> None:
    office_a, office_b = await open_journal(pg_url, "office-a"), await open_journal(pg_url, "office-b")
    senders = [await open_journal(pg_url, "sender-1"), await open_journal(pg_url, "sender-2")]
    calls = 60
    await asyncio.gather(journal_calls(office_a, "a", calls), journal_calls(office_b, "b", calls))
    deliveries = []
    for journal in senders:
        client = Bitrix24Client(settings_for(sim.webhook_url), retry_attempts=1)
        delivery = Delivery(journal, client, Telephony(client), settings_for(sim.webhook_url))
        # one sender takes a journal over at a time (a leader's lock decides who): both have done so here, before
        # either sends, so that what they claim is all that keeps them apart
        await journal.take_over()
        delivery._requeued = True
        deliveries.append(delivery)
    tasks = [asyncio.create_task(d.run()) for d in deliveries]
    try:
        await eventually(lambda: _drained(office_a), timeout=60, message="the shared outbox was not drained")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for d in deliveries:
            await d.client.close()
    mirrored = mirrored_once(sim)
    assert set(mirrored) == {f"{p}-{i}" for p in "ab" for i in range(calls)}
    ops = [op for leg in mirrored for op in await office_b.operations(leg)]
    assert {op.attempts for op in ops} == {1}, "no operation was handed to Bitrix24 twice"
    assert {op.sent_by for op in ops} <= {"sender-1", "sender-2"}
    assert {op.bridge for op in ops} == {"office-a", "office-b"}
    for journal in (office_a, office_b, *senders):
        await journal.close()


async def _drained(journal: AsyncJournal) -> bool:
    return await journal.depth() == 0


async def test_the_leader_wakes_when_another_bridge_journals_even_after_its_listening_connection_dropped(
    sim: Bitrix24Simulator, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No polling here (its period is an hour): the other bridge's commits wake the leader (LISTEN/NOTIFY)."""
    monkeypatch.setattr(loop, "SHARED_POLL", 3600.0)
    office_a, leader = await open_journal(pg_url, "office-a"), await open_journal(pg_url, "office-b")
    client = Bitrix24Client(settings_for(sim.webhook_url), retry_attempts=1)
    delivery = Delivery(leader, client, Telephony(client), settings_for(sim.webhook_url))
    leading = asyncio.create_task(delivery.lead())
    try:
        await eventually(lambda: _listening(leader), timeout=30, message="the leader never listened")
        await journal_calls(office_a, "a", 3)
        await eventually(lambda: _drained(office_a), timeout=30, message="the leader slept through the appends")
        (pid,) = await _listening(leader)
        await leader._x("SELECT pg_terminate_backend(?)", (pid,))
        await eventually(lambda: _listening(leader, not_pid=pid), timeout=30, message="it did not listen again")
        await journal_calls(office_a, "b", 2)
        await eventually(lambda: _drained(office_a), timeout=30, message="after the drop the appends went unheard")
    finally:
        leading.cancel()
        await asyncio.gather(leading, return_exceptions=True)
        await client.close()
    assert set(mirrored_once(sim)) == {"a-0", "a-1", "a-2", "b-0", "b-1"}
    for journal in (office_a, leader):
        await journal.close()


async def _listening(journal: AsyncJournal, not_pid: int = 0) -> list[int]:
    """The backends listening for appends (but ``not_pid``)."""
    rows = await journal._all(
        "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND state = 'idle' AND pid != ?", (not_pid,)
    )
    return [row[0] for row in rows]
