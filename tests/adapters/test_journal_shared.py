"""Several bridges on one PostgreSQL journal (a real server, tests/pgserver.py), through the async interface:
who journaled and who sent each operation, a claim that never hands one operation to two senders, a leader that
dies leaving its operations in flight, and secrets kept out of every error."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest

from bridge.domain.commands import CallType, CrmFinish, CrmNotify, CrmRegister, CrmShow
from bridge.journal import AsyncJournal, JournalError
from bridge.journal.codec import encode_command
from bridge.journal.schema import SCHEMA_VERSION, statements

START = datetime(2026, 3, 7, 10, 20, 30, tzinfo=UTC)


def register(leg: str) -> CrmRegister:
    return CrmRegister(leg, 7, "+79001234567", CallType.INCOMING, "74950000000", START, True)


def password() -> str:
    return os.environ["B24_TEST_PG_PASSWORD"]


@pytest.fixture
async def bridges(pg_url: str) -> AsyncIterator[dict[str, AsyncJournal]]:
    """Two bridges' journals on one database: ``office-a`` and ``office-b``."""
    names = ("office-a", "office-b")
    opened = {name: await AsyncJournal.open_postgres(pg_url, password=password(), bridge=name) for name in names}
    yield opened
    for journal in opened.values():
        await journal.close()


async def test_operations_of_several_bridges_share_one_outbox_and_say_who_journaled_them(
    bridges: dict[str, AsyncJournal],
) -> None:
    a, b = bridges["office-a"], bridges["office-b"]
    await a.append(register("a-1.1"), linkedid="a-1", pbx_call="a-1")
    await b.append(register("b-1.1"), linkedid="b-1", pbx_call="b-1")
    await b.append(CrmNotify(5, "missed"))
    ready = await a.ready()
    assert sorted(op.crm_leg or "" for op in ready) == ["", "a-1.1", "b-1.1"]
    assert [op.bridge for op in await a.operations("b-1.1")] == ["office-b"]
    assert [c.bridge for c in await b.calls()] == ["office-a", "office-b"]
    claimed = await a.mark_sent([op.id for op in ready])
    assert sorted(claimed) == sorted(op.id for op in ready)
    assert {op.sent_by for op in await b.operations("b-1.1")} == {"office-a"}


async def test_two_senders_claiming_the_same_batch_never_both_get_an_operation(
    bridges: dict[str, AsyncJournal],
) -> None:
    a, b = bridges["office-a"], bridges["office-b"]
    for i in range(30):
        await a.append(register(f"a-{i}.1"))
    ids = [op.id for op in await a.ready()]
    assert await b.ready() != []  # both see the same batch as ready
    got_a, got_b = await asyncio.gather(a.mark_sent(ids), b.mark_sent(list(reversed(ids))))
    assert set(got_a).isdisjoint(got_b)
    assert sorted(got_a + got_b) == sorted(ids)
    assert await b.mark_sent(ids) == []  # claimed already: nothing twice
    assert await a.ready() == []


async def test_an_operation_another_sender_holds_is_skipped_not_waited_for(
    bridges: dict[str, AsyncJournal], pg_url: str
) -> None:
    a = bridges["office-a"]
    first = await a.append(register("a-1.1"))
    second = await a.append(register("a-2.1"))
    other = await psycopg.AsyncConnection.connect(pg_url, password=password())
    async with other, other.transaction():  # the other sender is in the middle of claiming the first
        await other.execute("SELECT id FROM operations WHERE id = %s FOR UPDATE", (first,))
        claimed = await asyncio.wait_for(a.mark_sent([first, second]), timeout=10)
    assert claimed == [second]
    assert [op.state for op in await a.operations("a-1.1")] == ["pending"]


async def test_when_the_leader_dies_the_next_one_finds_its_operations_in_flight_doubtful(pg_url: str) -> None:
    leader = await AsyncJournal.open_postgres(pg_url, password=password(), bridge="office-a")
    await leader.take_over()
    await leader.append(register("a-1.1"))
    await leader.append(CrmShow("a-1.1", (7,)))
    await leader.append(register("a-2.1"))
    await leader.mark_sent([op.id for op in await leader.ready()])
    await leader._db.close()  # dies: no clean close, its operations stay 'sent'

    follower = await AsyncJournal.open_postgres(pg_url, password=password(), bridge="office-b")
    try:
        assert await follower.ready() == []  # in flight: nobody else sends them meanwhile
        requeued, doubted = await follower.take_over()
        assert (requeued, doubted) == (3, 0)  # PostgreSQL's commits survive: only what was in flight is in doubt
        again = await follower.ready()
        assert [(op.crm_leg, op.kind, op.attempts > 0) for op in again] == [
            ("a-1.1", "register", True),
            ("a-1.1", "show", True),
            ("a-2.1", "register", True),
        ]
        assert await follower.mark_sent([op.id for op in again]) == [op.id for op in again]
        assert {op.sent_by for op in await follower.operations("a-1.1")} == {"office-b"}
    finally:
        await follower.close()


async def test_tasks_of_one_bridge_take_turns_and_keep_each_calls_order(bridges: dict[str, AsyncJournal]) -> None:
    a = bridges["office-a"]

    async def call(n: int) -> None:
        leg = f"c-{n}.1"
        await a.append(register(leg))
        async with a.transaction():  # a unit of several writes, while other tasks write too
            await a.append(CrmShow(leg, (7,)))
            await a.append(CrmFinish(leg, 7, 10, "200"))

    await asyncio.gather(*(call(n) for n in range(20)))
    for n in range(20):
        ops = await a.operations(f"c-{n}.1")
        assert [(op.seq, op.kind) for op in ops] == [(1, "register"), (2, "show"), (3, "finish")]


async def test_bridges_starting_together_migrate_once(pg_url: str) -> None:
    journals = await asyncio.gather(
        *(AsyncJournal.open_postgres(pg_url, password=password(), bridge=f"b{i}") for i in range(4))
    )
    try:
        async with await psycopg.AsyncConnection.connect(pg_url, password=password()) as conn:
            rows = await (await conn.execute("SELECT version FROM journal_schema")).fetchall()
        assert rows == [(SCHEMA_VERSION,)]
    finally:
        for journal in journals:
            await journal.close()


async def test_a_shared_journal_of_schema_11_keeps_sending_its_offline_backlog_after_the_upgrade(pg_url: str) -> None:
    """Schema 12 moves the offline legs' heads to an index of their own, on PostgreSQL too."""
    now = START.timestamp()
    async with await psycopg.AsyncConnection.connect(pg_url, password=password()) as conn:
        for number in range(11):
            for statement in statements(number, "postgres"):
                await conn.execute(statement)
        await conn.execute("CREATE TABLE journal_schema (version INTEGER NOT NULL)")
        await conn.execute("INSERT INTO journal_schema (version) VALUES (11)")
        await conn.execute(
            "INSERT INTO calls (crm_leg, mode, ended_at, head_due, created_at, updated_at)"
            " VALUES ('late.1', 'offline', %s, %s, %s, %s)",
            (now, now, now, now),
        )
        cur = await conn.execute(
            "INSERT INTO operations (crm_leg, seq, kind, command, next_attempt_at, created_at)"
            " VALUES ('late.1', 1, 'register', %s, %s, %s) RETURNING id",
            (encode_command(register("late.1")), now, now),
        )
        (op_id,) = await cur.fetchone() or (None,)
        await conn.execute("UPDATE calls SET head_op = %s", (op_id,))
        await conn.commit()
    journal = await AsyncJournal.open_postgres(pg_url, password=password(), clock=lambda: now + 1)
    try:
        assert [(op.crm_leg, op.kind) for op in await journal.ready()] == [("late.1", "register")]
        assert await journal.next_due(60.0) == now
    finally:
        await journal.close()
    async with await psycopg.AsyncConnection.connect(pg_url, password=password()) as conn:
        indexes = {row[0] for row in await (await conn.execute("SELECT indexname FROM pg_indexes")).fetchall()}
        (version,) = await (await conn.execute("SELECT version FROM journal_schema")).fetchone() or (None,)
    assert version == SCHEMA_VERSION
    assert "calls_online_open" not in indexes


async def test_a_wrong_password_or_server_is_a_clear_error_that_never_shows_the_password(pg_url: str) -> None:
    with pytest.raises(JournalError) as wrong:
        await AsyncJournal.open_postgres(pg_url, password="not-the-password-xyz")
    assert "password authentication failed" in str(wrong.value)
    assert "not-the-password-xyz" not in str(wrong.value)
    assert pg_url in str(wrong.value)

    inline = pg_url.replace("bridge@", "bridge:s3cret-inline@")
    with pytest.raises(JournalError) as inline_error:
        await AsyncJournal.open_postgres(inline)
    assert "s3cret-inline" not in str(inline_error.value)

    nowhere = "postgresql://bridge@127.0.0.1:1/none"
    with pytest.raises(JournalError, match=r"cannot use the journal postgresql://bridge@127\.0\.0\.1:1/none"):
        await AsyncJournal.open_postgres(nowhere, password=password())


async def test_a_connection_the_server_drops_is_opened_anew_and_a_broken_write_is_not_half_done(
    bridges: dict[str, AsyncJournal], pg_url: str
) -> None:
    a = bridges["office-a"]
    await a.append(register("a-1.1"))

    async def drop_the_bridges_connections() -> None:
        async with await psycopg.AsyncConnection.connect(pg_url, password=password(), autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'b24-bridge' AND pid <> pg_backend_pid()"
            )

    await drop_the_bridges_connections()
    with pytest.raises(psycopg.OperationalError):  # the statement that met the dropped connection fails ...
        await a.append(CrmShow("a-1.1", (7,)))
    await a.append(CrmShow("a-1.1", (7,)))  # ... the caller tries again, on a new connection
    assert [(op.seq, op.kind) for op in await a.operations("a-1.1")] == [(1, "register"), (2, "show")]

    with pytest.raises(psycopg.OperationalError):
        async with a.transaction():
            await a.append(register("a-2.1"))
            await drop_the_bridges_connections()
            await a.append(CrmShow("a-2.1", (7,)))
    assert await a.operations("a-2.1") == []  # the broken transaction left nothing behind
    assert [op.crm_leg for op in await a.ready()] == ["a-1.1", "a-1.1"]
