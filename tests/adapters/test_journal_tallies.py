"""Schema 6: the distribution tallies survive reopening the journal (a restart); an older journal gains the table
and keeps its rows; the lead hand-over is stored and waits for its call's register like a finish."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from bridge.dispatch.tallies import Tallies
from bridge.domain.commands import CallType, CrmAssignLead, CrmRegister
from bridge.journal import Journal, decode_command, encode_command
from bridge.journal.schema import MIGRATIONS, Only
from bridge.journal.tallies import JournalTallies
from tests.eventually import eventually

MORNING = datetime(2026, 3, 10, 9, tzinfo=UTC)
NEXT_DAY = datetime(2026, 3, 11, 9, tzinfo=UTC)


def test_answered_counts_and_the_round_robin_order_survive_a_restart(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.db") as journal:
        tallies = Tallies(JournalTallies(journal))
        for ext in ("1001", "1002", "1001"):
            tallies.count_answer(ext, MORNING)
        tallies.assigned("rota", "1002")
        tallies.assigned("rota", "1001")
        tallies.assigned("rota", "1002")
        tallies.assigned("night", "1005")
    with Journal.open(tmp_path / "j.db") as journal:
        tallies = Tallies(JournalTallies(journal))
        assert tallies.answered_today(MORNING) == {"1001": 2, "1002": 1}
        assert tallies.last_assigned() == {"rota": ("1001", "1002"), "night": ("1005",)}
        assert tallies.answered_today(NEXT_DAY) == {}, "a new day starts from zero"
        tallies.count_answer("1003", NEXT_DAY)
    with Journal.open(tmp_path / "j.db") as journal:
        assert Tallies(JournalTallies(journal)).answered_today(NEXT_DAY) == {"1003": 1}


def test_a_journal_that_fails_leaves_the_counts_in_memory(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.db")
    tallies = Tallies(JournalTallies(journal))
    journal.close()
    tallies.count_answer("1001", MORNING)
    tallies.assigned("rota", "1001")
    assert tallies.answered_today(MORNING) == {"1001": 1}
    assert tallies.last_assigned() == {"rota": ("1001",)}


def test_a_schema_6_journal_gains_the_tallies_and_keeps_its_operations(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    for statements in MIGRATIONS[:6]:
        for statement in statements:
            if isinstance(statement, Only):
                if statement.dialect != "sqlite":
                    continue
                statement = statement.sql
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 6")
    conn.execute(
        "INSERT INTO operations (crm_leg, seq, kind, command, next_attempt_at, created_at)"
        """ VALUES (NULL, 1, 'notify', '{"kind":"notify","user_id":1,"message":"x"}', 0, 0)"""
    )
    conn.close()
    with Journal.open(tmp_path / "old.db") as journal:
        assert journal.depth() == 1
        JournalTallies(journal).save_answered("1001", "2026-03-10", 4)
        assert JournalTallies(journal).answered_on("2026-03-10") == {"1001": 4}


def test_the_hand_over_round_trips_and_waits_for_its_register(tmp_path: Path) -> None:
    assign = CrmAssignLead("leg", 12, "yours", "rota", "round robin: 1002 is next")
    assert decode_command(encode_command(assign)) == assign
    with Journal.open(tmp_path / "j.db") as journal:
        journal.append(CrmRegister("leg", 15, "79160000000", CallType.INCOMING, "1", MORNING, True))
        journal.append(assign)
        assert [op.kind for op in journal.ready()] == ["register"], "the hand-over does not ride on a register"
        failed = Journal.open(tmp_path / "k.db")
        failed.append(assign)
        assert failed.operations("leg")[0].state == "failed", "no register: nothing to hand over"
        failed.close()


def _commits(journal: Journal) -> list[str]:
    seen: list[str] = []
    journal._conn.set_trace_callback(lambda sql: seen.append(sql) if sql == "COMMIT" else None)
    return seen


async def test_an_answered_count_goes_with_the_next_commit_and_alone_within_a_moment(tmp_path: Path) -> None:
    """In the daemon (an event loop runs) the count costs no commit of its own when the journal commits anyway."""
    with Journal.open(tmp_path / "j.db") as journal:
        tallies = Tallies(JournalTallies(journal))
        commits = _commits(journal)
        tallies.count_answer("1001", MORNING)
        journal.append(CrmRegister("leg", 15, "79160000000", CallType.INCOMING, "1", MORNING, True))
        assert len(commits) == 1, "the append's commit carried the count"
        assert JournalTallies(journal).answered_on(MORNING.date().isoformat()) == {"1001": 1}
        tallies.count_answer("1002", MORNING)
        await eventually(lambda: JournalTallies(journal).answered_on(MORNING.date().isoformat()).get("1002") == 1)
        assert len(commits) == 2, "with no other commit coming, one of its own"
        tallies.count_answer("1001", MORNING)
    with Journal.open(tmp_path / "j.db") as journal:
        assert Tallies(JournalTallies(journal)).answered_today(MORNING) == {"1001": 2, "1002": 1}, "closing wrote it"


async def test_a_count_that_cannot_be_written_costs_the_journal_nothing(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.db") as journal:
        journal._x("DROP TABLE tallies")
        Tallies(JournalTallies(journal)).count_answer("1001", MORNING)
        op = journal.append(CrmRegister("leg", 15, "79160000000", CallType.INCOMING, "1", MORNING, True))
        assert [o.id for o in journal.operations("leg")] == [op]
        assert journal.aio._riders == [], "dropped once it failed, not tried again with every commit"
