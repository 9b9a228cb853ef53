"""``Journal.ready`` kept per leg: the same answer as reading every operation, at a cost that ignores the backlog."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.domain.commands import (
    CallType,
    CrmAttachRecord,
    CrmCommand,
    CrmFinish,
    CrmHide,
    CrmNotify,
    CrmRegister,
    CrmShow,
)
from bridge.journal import DoneMark, Journal
from bridge.journal.codec import encode_command
from bridge.journal.schema import MIGRATIONS, statements
from tests.adapters.journal_backends import PgBlocking
from tests.pgserver import PASSWORD, PgServer

START = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
LEGS = ("a", "b", "c", "d")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def register(leg: str) -> CrmRegister:
    return CrmRegister(leg, 7, "+79001234567", CallType.INCOMING, "74950000000", START, True)


Query = Callable[..., list[Any]]


def expected_heads(q: Query, now: float) -> list[int]:
    """The rule, read from every operation: per leg the first one not yet settled, if it may go now; live legs
    first (there are never enough of them here to reach their share), then the rest, the longest due first."""
    heads, live = [], []
    for (leg,) in q("SELECT DISTINCT crm_leg FROM operations WHERE crm_leg IS NOT NULL"):
        head = next(iter(q(
            "SELECT * FROM operations WHERE crm_leg = ? AND state IN ('pending', 'sent') ORDER BY seq LIMIT 1", (leg,)
        )), None)  # fmt: skip
        if head is None or head["state"] != "pending" or head["next_attempt_at"] > now:
            continue
        (call,) = q("SELECT * FROM calls WHERE crm_leg = ?", (leg,))
        if head["kind"] == "register" and call["mode"] == "offline" and call["ended_at"] is None:
            continue
        if head["kind"] in ("show", "hide", "finish", "attach_record") and call["call_id"] is None:
            continue
        (live if call["mode"] == "online" else heads).append((head["next_attempt_at"], head["id"]))
    loose = q(
        "SELECT next_attempt_at, id FROM operations WHERE crm_leg IS NULL AND state = 'pending'"
        " AND next_attempt_at <= ?",
        (now,),
    )
    return [op_id for _due, op_id in [*sorted(live), *sorted(heads + [tuple(r) for r in loose])]]


def ready_heads(journal: Journal) -> list[int]:
    ops = journal.ready(limit=10_000)
    seen: set[str] = set()
    heads = []
    for op in ops:  # a register's riders are not heads
        if op.crm_leg is None or op.crm_leg not in seen:
            heads.append(op.id)
        if op.crm_leg is not None:
            seen.add(op.crm_leg)
    return heads


ACTIONS = ["register", "show", "hide", "finish", "record", "notify", "sent", "done", "done_many", "retry", "refused",
           "fail", "offline", "take_offline", "call_id", "requeue", "retry_now", "tick"]  # fmt: skip
actions = st.lists(
    st.tuples(
        st.sampled_from(ACTIONS),
        st.sampled_from(LEGS),
        st.integers(min_value=0, max_value=5),
    ),
    max_size=40,
)


@contextmanager
def opened(backend: str, request: pytest.FixtureRequest, clock: Clock) -> Iterator[tuple[Journal, Query]]:
    """A fresh journal on ``backend`` and a way to read its tables directly."""
    if backend == "sqlite":
        path = Path(request.getfixturevalue("tmp_path_factory").mktemp("ready")) / "j.db"
        with Journal.open(path, clock=clock) as journal:
            conn = sqlite3.connect(path)
            conn.row_factory = sqlite3.Row
            yield journal, lambda sql, params=(): conn.execute(sql, params).fetchall()
            conn.close()
        return
    server: PgServer = request.getfixturevalue("pg_server")
    with PgBlocking(server.url(server.create_database()), clock, password=PASSWORD) as pg:
        yield pg, lambda sql, params=(): pg.run(lambda: pg.aio._all(sql, params))  # type: ignore[misc]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=actions)
def test_ready_agrees_with_reading_every_operation(
    request: pytest.FixtureRequest, backend: str, steps: list[tuple[str, str, int]]
) -> None:
    clock = Clock()
    with opened(backend, request, clock) as (journal, q):
        for action, leg, n in steps:
            ops = [op for op in journal.operations(leg) if op.state in ("pending", "sent")]
            target = ops[n % len(ops)].id if ops else None
            if action == "register":
                journal.append(register(leg))
            elif action in ("show", "hide"):
                journal.append((CrmShow if action == "show" else CrmHide)(leg, (7,)))
            elif action == "finish":
                journal.append(CrmFinish(leg, 7, n, "200"))
            elif action == "record":
                journal.append(CrmAttachRecord(leg, f"rec-{leg}"))
            elif action == "notify":
                journal.append(CrmNotify(n, "x"))
            elif action == "sent" and target is not None:
                journal.mark_sent([target])
            elif action == "done" and target is not None:
                journal.mark_done(target, call_id=f"C-{leg}" if n % 2 else None)
            elif action == "done_many":  # a batch's answer: the first open operation of up to n + 1 legs at once
                opens = ([op for op in journal.operations(other) if op.state in ("pending", "sent")] for other in LEGS)
                firsts = [ops[0] for ops in opens if ops][: n + 1]
                journal.mark_done_many([DoneMark(op.id, call_id=f"C-{op.crm_leg}" if n % 2 else None) for op in firsts])
            elif action in ("retry", "refused") and target is not None:
                journal.mark_failed(target, "x", permanent=False, retry_at=clock.now + n, arrived=action == "retry")
            elif action == "fail" and target is not None:
                journal.mark_failed(target, "x", permanent=True)
            elif action == "offline" and journal.calls(crm_leg=leg):
                journal.go_offline(leg)
            elif action == "take_offline":
                journal.take_offline(register_timeout=n)
            elif action == "call_id" and journal.calls(crm_leg=leg):
                journal.set_call_id(leg, f"C-{leg}")
            elif action == "requeue":
                journal.requeue_sent()
            elif action == "retry_now":
                journal.retry_now()
            elif action == "tick":
                clock.now += n
            assert ready_heads(journal) == expected_heads(q, clock.now), (action, leg, n)


def vm_steps(journal: Journal, conn_of: sqlite3.Connection, call: object) -> int:
    """SQLite virtual-machine steps (in thousands) that ``call()`` takes on the journal's connection."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn_of.set_progress_handler(count, 1000)
    try:
        call()  # type: ignore[operator]
    finally:
        conn_of.set_progress_handler(None, 0)
    return steps


def backlog(journal: Journal, calls: int, clock: Clock, *, waiting: bool) -> None:
    """``calls`` ended offline calls; ``waiting``: each register waits out a back-off (Bitrix24 is away)."""
    with journal.transaction():
        for i in range(calls):
            leg = f"b-{i}"
            op = journal.append(register(leg))
            journal.append(CrmFinish(leg, 7, 30, "200"))
            journal.go_offline(leg)
            if waiting:
                journal.mark_failed(op, "away", permanent=False, retry_at=clock.now + 300)


def test_ready_reads_about_what_it_returns_however_long_the_backlog(tmp_path: Path) -> None:
    costs: dict[tuple[int, bool], int] = {}
    for calls in (500, 5000):
        for waiting in (False, True):
            clock = Clock()
            with Journal.open(tmp_path / f"j-{calls}-{waiting}.db", clock=clock) as journal:
                backlog(journal, calls, clock, waiting=waiting)
                conn = journal._conn  # the cost is measured where it is paid
                costs[calls, waiting] = vm_steps(journal, conn, lambda j=journal: (j.ready(150), j.next_due(5.0)))
                if not waiting:
                    assert len(journal.ready(150)) == 150
    for waiting in (False, True):
        small, big = costs[500, waiting], costs[5000, waiting]
        assert big <= small * 1.5 + 5, f"ten times the backlog cost {big} vs {small} (waiting={waiting})"


def test_settling_a_batch_reads_about_what_it_settles_however_many_calls_are_in_progress(tmp_path: Path) -> None:
    costs: dict[int, int] = {}
    for calls in (500, 5000):
        with Journal.open(tmp_path / f"live-{calls}.db", clock=Clock()) as journal:
            with journal.transaction():
                ops = [journal.append(register(f"live-{i}")) for i in range(calls)]
            batch = ops[:: calls // 10]
            journal.mark_sent(batch)
            marks = [DoneMark(op, {"CALL_ID": f"C-{op}"}, call_id=f"C-{op}") for op in batch]
            costs[calls] = vm_steps(journal, journal._conn, lambda j=journal, m=marks: j.mark_done_many(m))
            assert {call.call_id for call in journal.calls(status="open") if call.call_id} == {m.call_id for m in marks}
    assert costs[5000] <= costs[500] * 1.5 + 5, f"ten times the calls in progress cost {costs[5000]} vs {costs[500]}"


def test_a_journal_of_the_first_schema_gets_its_heads_on_opening(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    now = 1_800_000_000.0
    rows: list[tuple[str, int, CrmCommand, str, int]] = [  # leg, seq, command, state, attempts
        ("online", 1, register("online"), "done", 1),
        ("online", 2, CrmFinish("online", 7, 5, "200"), "pending", 0),
        ("offline", 1, register("offline"), "pending", 2),
        ("offline", 2, CrmFinish("offline", 7, 5, "200"), "pending", 0),
        ("waiting", 1, register("waiting"), "pending", 0),
    ]
    for leg, mode, ended, call_id in (("online", "online", now, "C1"), ("offline", "offline", now, None),
                                      ("waiting", "offline", None, None)):  # fmt: skip
        conn.execute(
            "INSERT INTO calls (crm_leg, mode, ended_at, call_id, state, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (leg, mode, ended, call_id, "ended" if ended else "open", now, now),
        )
    for leg, seq, cmd, state, attempts in rows:
        conn.execute(
            "INSERT INTO operations (crm_leg, seq, kind, command, state, attempts, next_attempt_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (leg, seq, type(cmd).__name__.removeprefix("Crm").lower(), encode_command(cmd), state, attempts, now, now),
        )
    conn.close()
    with Journal.open(path, clock=lambda: now + 1) as journal:
        ready = [(op.crm_leg, op.kind, op.attempts, op.tries) for op in journal.ready()]
    assert ready == [("online", "finish", 0, 0), ("offline", "register", 2, 2), ("offline", "finish", 0, 0)]


def test_heads_journaled_before_the_offline_heads_had_an_index_of_their_own_still_go(tmp_path: Path) -> None:
    """Schema 12 keeps the offline legs' heads in an index of their own: a journal upgraded at the first start of
    the new program sends what the old one left waiting, live and offline, and the old unread index is gone."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for number in range(11):
        for statement in statements(number, "sqlite"):
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 11")
    now = 1_800_000_000.0
    for leg, mode, seq, cmd in (("live", "online", 1, register("live")), ("late", "offline", 1, register("late")),
                                ("late", "offline", 2, CrmFinish("late", 7, 5, "200"))):  # fmt: skip
        conn.execute(
            "INSERT OR IGNORE INTO calls (crm_leg, mode, ended_at, head_op, head_due, created_at, updated_at)"
            " VALUES (?, ?, ?, NULL, ?, ?, ?)",
            (leg, mode, now if mode == "offline" else None, now, now, now),
        )
        op = conn.execute(
            "INSERT INTO operations (crm_leg, seq, kind, command, next_attempt_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (leg, seq, type(cmd).__name__.removeprefix("Crm").lower(), encode_command(cmd), now, now),
        ).lastrowid
        if seq == 1:
            conn.execute("UPDATE calls SET head_op = ? WHERE crm_leg = ?", (op, leg))
    conn.close()
    with Journal.open(path, clock=lambda: now + 1) as journal:
        ready = [(op.crm_leg, op.kind) for op in journal.ready()]
        assert journal.next_due(60.0) == now
    assert ready == [("live", "register"), ("late", "register"), ("late", "finish")]
    conn = sqlite3.connect(path)
    indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert "calls_online_open" not in indexes


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_live_calls_go_ahead_of_an_offline_backlog_which_keeps_a_third(
    request: pytest.FixtureRequest, backend: str
) -> None:
    """After an outage, a new call's register must not wait behind the whole replay (it would go offline too)."""
    clock = Clock()
    with opened(backend, request, clock) as (journal, _q):
        backlog(journal, 300, clock, waiting=False)
        clock.now += 60
        live = {journal.append(register(f"live-{i}")) for i in range(200)}
        picked = journal.ready(150)
        assert len(picked) == 150
        assert {op.id for op in picked[:100]} <= live, "two thirds go to the live calls, newer though they are"
        rest = picked[100:]
        assert rest and all(op.crm_leg.startswith("b-") for op in rest if op.crm_leg), "the backlog keeps the rest"
        assert rest[0].crm_leg == "b-0", "and it still goes oldest first"
