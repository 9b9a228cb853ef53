"""Getting the journal onto the disk: fsyncs in a worker thread, one for many commits, and never lost to kill -9."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from bridge.domain.commands import CallType, CrmFinish, CrmNotify, CrmRegister
from bridge.journal import Journal, durability, store
from tests.eventually import eventually

START = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)


def register(leg: str) -> CrmRegister:
    return CrmRegister(leg, 1, "+79001234567", CallType.INCOMING, "74950000000", START, True)


@pytest.fixture
def fsync_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The name of the thread each fsync of the journal ran on."""
    seen: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        seen.append(threading.current_thread().name)
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    monkeypatch.setattr(os, "fdatasync", recording)
    yield seen


async def test_the_event_loop_never_waits_for_an_fsync(tmp_path: Path, fsync_threads: list[str]) -> None:
    with Journal.open(tmp_path / "j.db") as journal:
        for i in range(30):
            journal.append(register(f"leg-{i}"))
            journal.mark_sent([journal.operations(f"leg-{i}")[0].id])
        await journal.sync()
        assert not journal.wal.dirty
        while_running = list(fsync_threads)
    assert while_running, "the commits were fsynced"
    assert threading.current_thread().name not in while_running, "an fsync ran on the event loop's thread"


async def test_one_fsync_covers_every_commit_before_it(tmp_path: Path, fsync_threads: list[str]) -> None:
    with Journal.open(tmp_path / "j.db") as journal:
        for i in range(50):
            journal.append(CrmNotify(i, "x"))
        await asyncio.gather(*(journal.sync() for _ in range(20)))
        assert not journal.wal.dirty
        assert len(fsync_threads) <= 2, "twenty waiters and fifty commits share one barrier (two if one was running)"
        before = len(fsync_threads)
        await journal.sync()
        assert len(fsync_threads) == before, "nothing new committed: no fsync needed"


async def test_a_commit_nobody_waits_for_reaches_the_disk_within_the_period(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.db") as journal:
        journal.append(register("a"))
        assert journal.wal.dirty, "under the event loop a commit is not fsynced on the spot"
        await eventually(lambda: not journal.wal.dirty, timeout=durability.SYNC_PERIOD * 10)


def test_without_an_event_loop_every_commit_is_fsynced_before_it_returns(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.db") as journal:
        journal.append(register("a"))
        assert not journal.wal.dirty
        assert journal.wal.fsyncs >= 1


async def test_a_failing_disk_fails_the_barrier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_fd: int) -> None:
        raise OSError(5, "Input/output error")

    with Journal.open(tmp_path / "j.db") as journal:
        journal.append(register("a"))
        monkeypatch.setattr(os, "fsync", broken)
        monkeypatch.setattr(os, "fdatasync", broken)
        with pytest.raises(OSError, match="Input/output error"):
            await journal.sync()
        assert journal.wal.dirty, "nothing may count as durable"
        monkeypatch.undo()
        await journal.sync()
        assert not journal.wal.dirty


async def test_commits_nobody_waits_for_never_call_on_the_event_loop(tmp_path: Path) -> None:
    """The periodic fsync is the worker's own business: no timer, no callback on the loop per period."""
    loop = asyncio.get_running_loop()
    scheduled: list[object] = []
    for name in ("call_soon", "call_soon_threadsafe", "call_later", "call_at"):
        real = getattr(loop, name)

        def recording(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            scheduled.extend(a for a in args if callable(a))
            return _real(*args, **kwargs)

        setattr(loop, name, recording)
    with Journal.open(tmp_path / "j.db") as journal:
        for i in range(20):  # commits over about four periods
            journal.append(CrmNotify(i, "x"))
            await asyncio.sleep(durability.SYNC_PERIOD / 5)
        await eventually(lambda: not journal.wal.dirty, timeout=durability.SYNC_PERIOD * 10)
        assert journal.wal.fsyncs >= 2, "the commits were fsynced as they came, a period apart"
    from_journal = [cb for cb in scheduled if (getattr(cb, "__module__", None) or "").startswith("bridge.journal")]
    assert not from_journal, from_journal


async def test_an_idle_journal_stops_syncing(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.db") as journal:
        journal.append(register("a"))
        await eventually(lambda: not journal.wal.dirty, timeout=durability.SYNC_PERIOD * 10)
        await asyncio.sleep(durability.SYNC_PERIOD * 2)  # the worker's last look finds nothing new
        fsyncs = journal.wal.fsyncs
        await asyncio.sleep(durability.SYNC_PERIOD * 3)
        assert journal.wal.fsyncs == fsyncs, "nothing committed: nothing to fsync"
        journal.append(register("b"))
        await eventually(lambda: not journal.wal.dirty, timeout=durability.SYNC_PERIOD * 10)
        assert journal.wal.fsyncs == fsyncs + 1, "the next commit wakes it again"


async def test_a_failing_disk_is_retried_for_commits_nobody_waits_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_fd: int) -> None:
        raise OSError(5, "Input/output error")

    with Journal.open(tmp_path / "j.db") as journal:
        journal.append(register("a"))
        await journal.sync()
        monkeypatch.setattr(os, "fsync", broken)
        monkeypatch.setattr(os, "fdatasync", broken)
        with structlog.testing.capture_logs() as logs:
            journal.append(register("b"))
            await eventually(lambda: any(e["event"] == "journal.sync_failed" for e in logs), timeout=10)
        assert journal.wal.dirty, "nothing may count as durable"
        monkeypatch.undo()
        await eventually(lambda: not journal.wal.dirty, timeout=durability.SYNC_PERIOD * 10)


def test_a_journal_serves_one_event_loop_after_another(tmp_path: Path) -> None:
    async def commit_and_sync(journal: Journal, leg: str) -> None:
        journal.append(register(leg))
        assert journal.wal.dirty
        await journal.sync()
        assert not journal.wal.dirty

    with Journal.open(tmp_path / "j.db") as journal:
        asyncio.run(commit_and_sync(journal, "a"))
        asyncio.run(commit_and_sync(journal, "b"))
        journal.append(register("c"))
        assert not journal.wal.dirty, "no loop any more: durable at once"


async def test_closing_a_journal_leaves_no_thread_behind(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    for i in range(10):
        with Journal.open(tmp_path / f"j{i}.db") as journal:
            journal.append(register("a"))
            waiting = asyncio.ensure_future(journal.sync())
            await asyncio.sleep(0)
        assert not journal.wal.dirty, "closing made the commit durable"
        await waiting  # and woke whoever waited for it
    assert set(threading.enumerate()) <= before


async def test_commits_racing_the_worker_to_sleep_are_all_made_durable(tmp_path: Path) -> None:
    """A short period puts the worker to sleep and wakes it again hundreds of times; no commit may be left to a
    worker that sleeps, and every barrier returns with what came before it on disk."""
    rng = random.Random()
    with Journal.open(tmp_path / "j.db") as journal:
        journal.wal.period = 0.002
        for i in range(300):
            journal.append(CrmNotify(i, "x"))
            if rng.random() < 0.1:
                before = journal.wal._committed
                await asyncio.wait_for(journal.sync(), timeout=10)
                assert journal.wal._durable >= before
            await asyncio.sleep(rng.choice((0, 0.001, 0.003, 0.006)))
        await eventually(lambda: not journal.wal.dirty, timeout=10)


async def test_checkpoints_keep_the_wal_small_and_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with Journal.open(path) as journal:
        journal.wal.checkpoint_every = 20
        for i in range(300):
            journal.append(register(f"leg-{i}"))
            journal.append(CrmFinish(f"leg-{i}", 1, 5, "200"))
            if i % 10 == 0:
                await journal.sync()
        await journal.sync()
        wal_size = (tmp_path / "j.db-wal").stat().st_size
        assert wal_size < 2_000_000, f"the WAL is restarted after checkpoints, not grown ({wal_size} bytes)"
    with Journal.open(path) as journal:
        assert len(journal.calls()) == 300
        assert journal.depth() == 600


# --- taking the journal over after a crash or a power cut ----------------------------------------------


def journal_with_a_dead_sender(path: Path, monkeypatch: pytest.MonkeyPatch, boot: str) -> dict[str, int]:
    """A sender took the journal over in ``boot`` and died without closing it, after sending some of it."""
    monkeypatch.setattr(store, "boot_id", lambda: boot)
    journal = Journal.open(path)
    ids = {}
    for leg in ("done", "in-flight", "waiting"):
        ids[leg] = journal.append(register(leg))
        journal.append(CrmFinish(leg, 1, 5, "200"))
    journal.append(CrmNotify(1, "x"))
    journal.take_over()
    journal.mark_sent([ids["done"], ids["in-flight"]])
    journal.mark_done(ids["done"], call_id="C1")
    journal.wal.close()  # what a dead process leaves: no clean close
    journal._conn.close()  # the connection SQLite would drop with the process
    return ids


def attempts_by_leg(journal: Journal) -> dict[str, list[int]]:
    return {leg: [op.attempts for op in journal.operations(leg) if op.state != "done"]
            for leg in ("done", "in-flight", "waiting")}  # fmt: skip


@pytest.mark.parametrize(
    ("boot_now", "expected"),
    [
        ("boot-A", {"done": [0], "in-flight": [1, 0], "waiting": [0, 0]}),  # the process died: nothing was lost
        ("boot-B", {"done": [1], "in-flight": [1, 1], "waiting": [1, 1]}),  # the machine restarted under it
    ],
)
def test_after_a_restart_of_the_machine_every_unsettled_call_is_doubtful(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, boot_now: str, expected: dict[str, list[int]]
) -> None:
    path = tmp_path / "j.db"
    journal_with_a_dead_sender(path, monkeypatch, boot="boot-A")
    monkeypatch.setattr(store, "boot_id", lambda: boot_now)
    with Journal.open(path) as journal:
        requeued, doubted = journal.take_over()
        assert requeued == 1
        assert doubted == (0 if boot_now == "boot-A" else 4)
        assert attempts_by_leg(journal) == expected
        assert journal.operations(None)[0].attempts == 0, "a notification cannot be checked: left as it is"


def test_a_clean_close_leaves_nothing_to_doubt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.db"
    monkeypatch.setattr(store, "boot_id", lambda: "boot-A")
    with Journal.open(path) as journal:
        journal.append(register("a"))
        journal.take_over()
    monkeypatch.setattr(store, "boot_id", lambda: "boot-B")
    with Journal.open(path) as journal:
        assert journal.take_over() == (0, 0)
        assert journal.operations("a")[0].attempts == 0


def test_a_reader_does_not_clear_the_senders_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j.db"
    journal_with_a_dead_sender(path, monkeypatch, boot="boot-A")
    with Journal.open(path) as reader:  # b24-bridge journal, while the machine was up
        reader.calls()
    monkeypatch.setattr(store, "boot_id", lambda: "boot-B")
    with Journal.open(path) as journal:
        assert journal.take_over()[1] == 4


# --- kill -9 under the event loop ----------------------------------------------------------------------

ASYNC_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import datetime, timezone
    import structlog
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    from bridge.domain.commands import CallType, CrmFinish, CrmRegister
    from bridge.journal import Journal

    async def main():
        j = Journal.open(sys.argv[1])
        start = datetime(2026, 3, 7, 10, 0, tzinfo=timezone.utc)
        i = int(sys.argv[2])
        while True:
            leg = f"leg-{i}"
            j.append(CrmRegister(leg, 1, "+7900", CallType.INCOMING, "1", start, True))
            j.append(CrmFinish(leg, 1, 5, "200"))
            print("appended", leg, flush=True)  # committed, not fsynced: the OS has it
            if i % 7 == 0:
                await j.sync()
                print("synced", leg, flush=True)
            await asyncio.sleep(0)
            i += 1

    asyncio.run(main())
    """
)


def test_kill_9_under_the_event_loop_loses_no_commit(tmp_path: Path) -> None:
    """With ``synchronous=NORMAL`` a commit is in the OS when ``append`` returns: a killed process loses none."""
    path = tmp_path / "journal.db"
    rng = random.Random()
    appended: set[str] = set()
    first = 0
    for _round in range(4):
        child = subprocess.Popen(
            [sys.executable, "-c", ASYNC_WRITER, str(path), str(first)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert child.stdout is not None
        stop_after = rng.randint(20, 400)
        for n, line in enumerate(child.stdout):
            what, leg = line.split()
            if what == "appended":
                appended.add(leg)
            if n >= stop_after:
                break
        child.kill()  # SIGKILL right after an append, wherever the barrier is
        child.wait()
        with Journal.open(path) as journal:
            legs = {c.crm_leg for c in journal.calls()}
            assert appended <= legs, f"lost: {sorted(appended - legs)[:5]}"
            for leg in legs:
                assert [op.kind for op in journal.operations(leg)] in (["register"], ["register", "finish"]), leg
            first = max(int(leg.split("-")[1]) for leg in legs) + 1
    assert len(appended) >= 80


async def test_a_claim_is_a_commit_the_barrier_waits_for(tmp_path: Path, fsync_threads: list[str]) -> None:
    """A sender that did not take the journal over awaits ``sync`` between marking operations sent and sending them:
    the claim (one statement committed by itself, no transaction of its own) must count as a commit."""
    with Journal.open(tmp_path / "j.db") as journal:
        op = journal.append(register("a"))
        await journal.sync()
        before, fsyncs = journal.wal._committed, len(fsync_threads)
        journal.mark_sent([op])
        assert journal.wal._committed == before + 1
        await journal.sync()
        assert len(fsync_threads) > fsyncs, "the claim was fsynced before the barrier returned"
        assert journal.operations("a")[0].state == "sent"
