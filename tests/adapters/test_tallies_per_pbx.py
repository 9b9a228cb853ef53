"""The ``evenly`` answered-today counts and the lead round robin on a shared PostgreSQL journal (a real server) are
kept per PBX: two offices whose extensions share numbers never mix their counts, and the bridges of a standby pair
(one PBX) share theirs. An SQLite journal written before the tallies were per PBX keeps its counts."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

from bridge.journal import AsyncJournal, Journal
from bridge.journal.behind import WriteBehind
from bridge.journal.schema import MIGRATIONS
from bridge.journal.shared_tallies import SharedTallies
from bridge.journal.tallies import JournalTallies

DAY = "2026-03-07"
# the schema version just before the migration that keys the tallies by PBX
TALLIES_PER_PBX = next(n for n, steps in enumerate(MIGRATIONS) if any("tallies_per_pbx" in str(s) for s in steps))


async def test_two_offices_with_the_same_extensions_keep_their_own_counts(pg_url: str) -> None:
    journal = await AsyncJournal.open_postgres(pg_url, password=os.environ["B24_TEST_PG_PASSWORD"], bridge="a")
    behind = WriteBehind(journal, lambda: None)
    writer = asyncio.create_task(behind.run())
    try:
        office_a, office_b = SharedTallies(journal, behind, "pbx-a"), SharedTallies(journal, behind, "pbx-b")
        for tallies in (office_a, office_b):
            await tallies.load()
        office_a.save_answered("1001", DAY, 5)
        office_b.save_answered("1001", DAY, 1)
        office_a.save_assigned("sales", "1002")
        office_b.save_assigned("sales", "1001")
        office_a.save_assigned("sales", "1001")
        assert await behind.drain(10)
        standby_a, restarted_b = SharedTallies(journal, behind, "pbx-a"), SharedTallies(journal, behind, "pbx-b")
        for tallies in (standby_a, restarted_b):
            await tallies.load()
        assert standby_a.answered_on(DAY) == {"1001": 5} and restarted_b.answered_on(DAY) == {"1001": 1}
        assert standby_a.last_assigned() == {"sales": ("1002", "1001")}
        assert restarted_b.last_assigned() == {"sales": ("1001",)}
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await journal.close()


def test_an_sqlite_journal_from_before_keeps_its_counts(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal.open(path) as journal:
        tallies = JournalTallies(journal)
        tallies.save_answered("1001", DAY, 2)
        tallies.save_assigned("sales", "1003")
    # back to the schema before the tallies migration: the tallies keyed without a PBX
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(
        "BEGIN; CREATE TABLE old (scope TEXT NOT NULL, member TEXT NOT NULL, day TEXT NOT NULL DEFAULT '',"
        " count INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL, PRIMARY KEY (scope, member));"
        " INSERT INTO old SELECT scope, member, day, count, updated_at FROM tallies; DROP TABLE tallies;"
        " ALTER TABLE old RENAME TO tallies;"
        f" PRAGMA user_version = {TALLIES_PER_PBX}; COMMIT;"
    )
    conn.close()
    with Journal.open(path) as journal:
        tallies = JournalTallies(journal)
        assert tallies.answered_on(DAY) == {"1001": 2}
        tallies.save_answered("1001", DAY, 3)
        tallies.save_assigned("sales", "1003")
        assert tallies.answered_on(DAY) == {"1001": 3}
        assert tallies.last_assigned() == {"sales": ("1003",)}
        rows = journal._x("SELECT pbx, count FROM tallies WHERE scope = 'lead:sales'").fetchall()
        assert [(r[0], r[1]) for r in rows] == [("", 2)]
