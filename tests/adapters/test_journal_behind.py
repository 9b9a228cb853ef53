"""The dispatcher's outbox on a PostgreSQL journal (a real server): appends queued by a synchronous step are
committed in their order, delivery hears of each only once it is in the journal, a database that fails keeps
the queue waiting in order, and the tallies and status figures are read without waiting."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest

from bridge.domain.commands import CallType, CrmFinish, CrmRegister
from bridge.journal import AsyncJournal, JournalError
from bridge.journal.behind import WriteBehind
from bridge.journal.cached import CachedReads
from bridge.journal.per_pbx import OwnCalls, PbxJournal
from bridge.journal.shared_tallies import SharedTallies

START = datetime(2026, 3, 7, 10, 20, 30, tzinfo=UTC)


def register(leg: str) -> CrmRegister:
    return CrmRegister(leg, 7, "+79001234567", CallType.INCOMING, "74950000000", START, True)


@pytest.fixture
async def journal(pg_url: str) -> AsyncIterator[AsyncJournal]:
    opened = await AsyncJournal.open_postgres(pg_url, password=os.environ["B24_TEST_PG_PASSWORD"], bridge="office-a")
    yield opened
    await opened.close()


class Flaky(AsyncJournal):
    """The journal whose database drops the first ``failures`` appends (a connection lost, a server restart)."""

    failures = 0

    async def append(self, cmd: object, **kw: str) -> int:  # type: ignore[override]
        if self.failures:
            self.failures -= 1
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return await super().append(cmd, **kw)  # type: ignore[arg-type]


async def test_queued_appends_reach_the_journal_in_order_and_delivery_hears_after_each_commit(
    journal: AsyncJournal,
) -> None:
    heard: list[int] = []

    def written() -> None:  # delivery's notify: what it would read now
        heard.append(len(seen))

    seen: list[int] = []
    behind = WriteBehind(journal, written)
    writer = asyncio.create_task(behind.run())
    for n in range(10):  # one synchronous step: nothing awaited between the appends
        behind.append(register(f"c{n}.1"), pbx_call=f"c{n}")
        behind.append(CrmFinish(f"c{n}.1", 7, n, "200"))
    assert behind.wrote("c3.1") and not behind.wrote("c99.1")
    original = journal.append

    async def counting(cmd: object, **kw: str) -> int:
        op = await original(cmd, **kw)  # type: ignore[arg-type]
        seen.append(op)
        return op

    journal.append = counting  # type: ignore[method-assign]
    assert await behind.drain(10)
    writer.cancel()
    assert heard == list(range(1, 21)), "told after each commit, never before"
    assert seen == sorted(seen)
    for n in range(10):
        assert [op.kind for op in await journal.operations(f"c{n}.1")] == ["register", "finish"]


async def test_a_failing_database_keeps_the_queue_waiting_in_order(pg_url: str) -> None:
    journal = await Flaky.open_postgres(pg_url, password=os.environ["B24_TEST_PG_PASSWORD"], bridge="office-a")
    assert isinstance(journal, Flaky)
    journal.failures = 2
    heard: list[str] = []
    behind = WriteBehind(journal, lambda: heard.append("op"), max_wait=0.05)
    writer = asyncio.create_task(behind.run())
    try:
        behind.append(register("d.1"), pbx_call="d")
        behind.append(CrmFinish("d.1", 7, 12, "200"))
        assert await behind.drain(10)
        assert [op.kind for op in await journal.operations("d.1")] == ["register", "finish"]
        assert heard == ["op", "op"] and journal.failures == 0
    finally:
        writer.cancel()
        await journal.close()


async def test_tallies_come_back_after_a_restart(journal: AsyncJournal, pg_url: str) -> None:
    behind = WriteBehind(journal, lambda: None)
    writer = asyncio.create_task(behind.run())
    tallies = SharedTallies(journal, behind)
    await tallies.load()
    tallies.save_answered("1001", "2026-03-07", 3)
    tallies.save_assigned("sales", "1002")
    tallies.save_assigned("sales", "1001")
    assert await behind.drain(10)
    writer.cancel()
    again = SharedTallies(journal, behind)
    await again.load()
    assert again.answered_on("2026-03-07") == {"1001": 3} and again.answered_on("2026-03-08") == {}
    assert again.last_assigned() == {"sales": ("1002", "1001")}


async def test_status_figures_are_read_from_a_copy_that_says_when_the_database_fails(journal: AsyncJournal) -> None:
    await journal.append(register("e.1"), pbx_call="e")
    legs = ["e.1"]
    reads = CachedReads(journal, lambda: legs)
    await reads.refresh()
    assert reads.depth() == 1 and reads.oldest_pending_age(reads._at + 5) >= 5
    assert [row.crm_leg for row in reads.calls(crm_leg="e.1")] == ["e.1"] and reads.calls(crm_leg="x.1") == []
    assert [op.kind for op in reads.operations("e.1")] == ["register"]

    async def unreachable() -> int:
        raise psycopg.OperationalError("connection refused")

    journal.depth = unreachable  # type: ignore[method-assign]
    await reads.refresh()
    with pytest.raises(JournalError, match="connection refused"):
        reads.depth()
    del journal.depth
    await reads.refresh()
    assert reads.depth() == 1


async def test_recovery_reads_its_own_pbx_calls_and_a_standby_partner_reads_the_same(pg_url: str) -> None:
    password = os.environ["B24_TEST_PG_PASSWORD"]
    opened = []
    for bridge, pbx in (("office-a", "pbx-a:8088/b24"), ("office-a-standby", "pbx-a:8088/b24"), ("office-b", "b")):
        journal = await PbxJournal.open_postgres(pg_url, password=password, bridge=bridge)
        assert isinstance(journal, PbxJournal)
        journal.pbx = pbx
        opened.append(journal)
    a, standby, b = opened
    try:
        await a.append(register("a1.1"), pbx_call="a1")
        await b.append(register("b1.1"), pbx_call="b1")
        for view in (OwnCalls(a), OwnCalls(standby)):
            assert [row.crm_leg for row in await view.calls(status="open")] == ["a1.1"]
        await b.append(CrmFinish("a1.1", 7, 3, "200"))  # never re-marks a call journaled first by another PBX
        for view in (OwnCalls(a), OwnCalls(standby)):
            assert [row.crm_leg for row in await view.calls()] == ["a1.1"]
            assert await view.calls(crm_leg="b1.1") == []
            assert await view.legs_since(0) == {"a1.1"}
        assert [row.crm_leg for row in await OwnCalls(b).calls()] == ["b1.1"]
        assert len(await a.calls()) == 2, "delivery still reads the whole shared outbox"
    finally:
        for journal in opened:
            await journal.close()
