"""Getting the journal's commits onto the disk without making the event loop wait for the disk.

The journal runs SQLite in WAL mode with ``synchronous=NORMAL``: a commit is written into the ``-wal`` file (the
operating system has it as soon as the commit returns, so ``kill -9`` loses nothing) but not fsynced. This module
does the fsync, in a worker thread of its own: :meth:`WalSync.sync` is an asynchronous barrier that returns once
every commit made before it was called is on disk (one fsync covers every commit before it: group commit), and
while there are commits not yet on disk a barrier runs by itself within :data:`SYNC_PERIOD`. Syncing the WAL
(``fdatasync``, as SQLite does on Linux) from another file descriptor is what SQLite's ``synchronous=FULL`` does
at every commit (the sync is per file, not per descriptor), so a commit covered by a barrier survives a power cut
just as it would under FULL (SQLite's documentation: in WAL mode, FULL syncs the WAL at every commit, NORMAL
omits that sync and keeps the database consistent; a commit is durable across an application crash either way).

Checkpoints (copying the WAL back into the database file, two fsyncs) run in the same worker thread on a second
connection, so SQLite's own automatic checkpoint, which would run them on the writer's thread, is switched off.
One sync stays on the writer's thread: SQLite syncs the WAL's header when it starts reusing the WAL after a
complete checkpoint (once per :data:`CHECKPOINT_COMMITS` commits or so). Without a running event loop (the CLI,
tests) every commit is made durable at once, as under FULL.

The periodic sync costs the event loop nothing: a commit only counts itself (and, the first one after the worker
went to sleep, wakes it); the worker waits out the period on its own clock, fsyncs and counts what is durable. It
hands anything to the loop only when a coroutine waits in :meth:`WalSync.sync`, once per fsync that covers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

SYNC_PERIOD = 0.2
"""Seconds: a commit not followed by an explicit barrier is on disk at most this long (plus the fsync) later."""
BOOT_ID = "/proc/sys/kernel/random/boot_id"
CHECKPOINT_COMMITS = 1000
"""Commits between two checkpoints (a commit writes a few 4 KiB pages: the WAL stays within a few MiB)."""


def boot_id() -> str:
    """This boot of the machine (Linux); a new one after a power cut or a reboot. Elsewhere: a value of its own
    for every process, so any unclean stop counts as one that may have lost commits."""
    try:
        return Path(BOOT_ID).read_text(encoding="ascii").strip()
    except OSError:
        return f"unknown-{uuid.uuid4()}"


class WalSync:
    """Group commit for one journal file. ``committed()`` after every commit; ``await sync()`` before anything
    that must only happen once the commits so far are on disk; ``close()`` at the end.

    Between two threads: the commit counter is bumped on the committing (the loop's) thread and read by the
    worker; the durable counter is raised by whoever fsynced (under ``_cond``) and read by the loop. CPython's GIL
    makes each read or store of an attribute atomic and orders them as the threads ran them, which is what the
    lock-free reads and the handshake on ``_awake`` (see :meth:`_doze`) rely on. The disk work itself (the WAL's
    descriptor, the checkpointing connection, ``fsyncs`` and ``longest``) is under ``_disk``."""

    def __init__(self, db_path: Path, *, period: float = SYNC_PERIOD, checkpoint_every: int = CHECKPOINT_COMMITS):
        self.db_path = db_path
        self.wal_path = db_path.with_name(db_path.name + "-wal")
        self.period = period
        self.checkpoint_every = checkpoint_every
        self.fsyncs = 0
        """How many fsyncs this has done (for tests and figures)."""
        self.longest = 0.0
        """Seconds the slowest fsync (with its checkpoint, if any) took; the bench reads and resets it."""
        self._committed = 0
        self._durable = 0
        self._checkpointed = 0
        """``_committed`` when the last checkpoint was decided on."""
        self._again = False
        self._cond = threading.Condition()
        """Guards the worker's wake-up (``_awake``, ``_waiters``, ``_stopping``) and raises of ``_durable``."""
        self._awake = False
        """The worker will look at the commit counter again without being told (it counts down a period)."""
        self._stopping = False
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._thread: threading.Thread | None = None
        self._disk = threading.Lock()
        self._checkpointer: sqlite3.Connection | None = None
        self._fd: int | None = None

    @property
    def dirty(self) -> bool:
        """Some commit is not yet known to be on disk."""
        return self._durable < self._committed

    def committed(self) -> None:
        """A transaction was committed: get it onto the disk soon (at once when there is no event loop)."""
        self._committed += 1
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._flush_now()
            return
        if not self._awake:  # the first commit since the worker went to sleep (read after the count: see _doze)
            with self._cond:
                self._awake = True
                self._start()
                self._cond.notify()

    async def sync(self) -> None:
        """Return once every commit made before this call is on disk. Raises :class:`OSError` when the disk
        refuses (nothing that depended on it should happen then)."""
        target = self._committed
        if self._durable >= target:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._durable >= target:  # an fsync landed meanwhile
                return
            self._waiters.append((target, loop, waiter))
            self._start()
            self._cond.notify()  # no waiting out the period: an fsync now
        await waiter

    def close(self) -> None:
        """Make everything durable and stop the worker (the caller closes its own connection after this)."""
        thread = self._thread
        if thread is not None:
            with self._cond:
                self._stopping = True
                self._cond.notify()
            thread.join()
            self._thread, self._stopping, self._awake = None, False, False
        if self.dirty or self._waiters:
            self._flush_now()
        with self._disk:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def flush_now(self) -> None:
        """Make everything durable now, on the caller's thread (once at a start or an end, not per call)."""
        self._flush_now()

    # --- inside ----------------------------------------------------------------------------------------

    def _start(self) -> None:
        """Start the worker if it is not running (under ``_cond``)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="journal-sync", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        """The worker thread: asleep while everything is durable. The first commit wakes it; from then on it
        looks every period (at once for a waiter in :meth:`sync`) and fsyncs what was committed meanwhile, until
        a period passes without a commit. Commits that keep coming never wake it: it is awake already."""
        cond = self._cond
        while True:
            with cond:
                cond.wait_for(lambda: self._awake or self._waiters or self._stopping)
                if not self._waiters:  # nobody waits: wait out the period (a waiter or close() cuts it short)
                    cond.wait_for(lambda: self._waiters or self._stopping, timeout=self.period)
                if self._stopping:
                    return  # close() makes the rest durable on its own thread
            target = self._committed  # every commit counted so far is in the WAL
            if target > self._durable:  # a waiter's target is at most the count when it came: covered too
                error: OSError | None = None
                try:
                    with self._disk:
                        self._flush(self._checkpoint_due())
                except OSError as exc:
                    error = exc
                    log.error("journal.sync_failed", path=str(self.db_path), error=str(exc))
                self._landed(target, error)
            else:
                self._doze()

    def _doze(self) -> None:
        """A period passed without a commit: sleep until the next one. ``_awake`` is cleared before the counter is
        read; ``committed()`` bumps the counter before it reads ``_awake``: one of the two sees the other's store,
        so no commit is left to a worker that sleeps."""
        with self._cond:
            self._awake = False
            if self._committed > self._durable:
                self._awake = True

    def _landed(self, target: int, error: OSError | None) -> None:
        """The commits up to ``target`` are on disk (or the fsync failed): wake the waiters that covers, on
        their loops (the one hand-off to a loop, and only when somebody waits)."""
        with self._cond:
            if error is None:
                self._durable = max(self._durable, target)
                done = [w for w in self._waiters if w[0] <= self._durable]
                self._waiters = [w for w in self._waiters if w[0] > self._durable]
            else:
                done, self._waiters = self._waiters, []
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _target, loop, waiter in done:
            by_loop.setdefault(loop, []).append(waiter)
        for loop, waiters in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_wake, waiters, error)

    def _flush_now(self) -> None:
        target = self._committed
        try:
            with self._disk:
                self._flush(self._checkpoint_due())
        except OSError as exc:
            self._landed(target, exc)
            raise
        self._landed(target, None)

    def _checkpoint_due(self) -> bool:
        """(Under ``_disk``.)"""
        committed = self._committed
        if committed - self._checkpointed < self.checkpoint_every and not self._again:
            return False
        self._checkpointed, self._again = committed, False
        return True

    def _flush(self, checkpoint: bool) -> None:
        """Fsync the WAL, then checkpoint if asked (under ``_disk``, in the worker thread or the caller's)."""
        started = time.monotonic()
        fd = self._wal_fd()
        if fd is not None:  # None: no WAL; everything is in the database file, fsynced by SQLite's checkpoint
            getattr(os, "fdatasync", os.fsync)(fd)  # what SQLite itself uses on Linux: the data and the size
        self.fsyncs += 1
        if checkpoint:
            self._checkpoint()
        seconds = time.monotonic() - started
        self.longest = max(self.longest, seconds)
        if seconds > 1.0:
            log.warning("journal.slow_sync", path=str(self.db_path), seconds=round(seconds, 3))

    def _wal_fd(self) -> int | None:
        """The WAL, kept open: one syscall per barrier (each one is a wait for the GIL on the way back). SQLite
        keeps the same file while the journal's connection is open, so the descriptor stays the right one."""
        if self._fd is None:
            try:
                self._fd = os.open(self.wal_path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
        return self._fd

    def _checkpoint(self) -> None:
        """Copy the WAL into the database without waiting for the writer (it restarts the WAL when it may)."""
        try:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
                self._checkpointer.execute("PRAGMA synchronous=NORMAL")
            _busy, frames, copied = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            # the writer added frames meanwhile: the WAL is restarted only once a checkpoint copied it all
            self._again = copied < frames
        except sqlite3.Error as exc:
            log.warning("journal.checkpoint_failed", path=str(self.db_path), error=str(exc))


def _wake(waiters: list[asyncio.Future[None]], error: OSError | None) -> None:
    """On a waiter's loop: the fsync it waited for landed (or failed)."""
    for waiter in waiters:
        if not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
