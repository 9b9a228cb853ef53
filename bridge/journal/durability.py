"""Getting the journal's commits onto the disk without making the event loop wait for the disk.

The journal runs SQLite in WAL mode with ``synchronous=NORMAL``: a commit is written into the ``-wal`` file (the
operating system has it as soon as the commit returns, so ``kill -9`` loses nothing) but not fsynced. This module
does the fsync, in a worker thread of its own: :meth:`WalSync.sync` is an asynchronous barrier that returns once
every commit made before it was called is on disk (one fsync covers every commit before it: group commit), and
while there are commits not yet on disk a barrier runs by itself within :data:`SYNC_PERIOD`. Fsyncing the WAL
from another file descriptor is exactly what SQLite's ``synchronous=FULL`` does at every commit (fsync is per
file, not per descriptor), so a commit covered by a barrier survives a power cut just as it would under FULL.

Checkpoints (copying the WAL back into the database file, two fsyncs) run in the same worker thread on a second
connection, so SQLite's own automatic checkpoint, which would run them on the writer's thread, is switched off.
Without a running event loop (the CLI, tests) every commit is made durable at once, as under FULL.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

SYNC_PERIOD = 0.2
"""Seconds: a commit not followed by an explicit barrier is on disk at most this long (plus the fsync) later."""
CHECKPOINT_COMMITS = 1000
"""Commits between two checkpoints (a commit writes a few 4 KiB pages: the WAL stays within a few MiB)."""


class WalSync:
    """Group commit for one journal file. ``committed()`` after every commit; ``await sync()`` before anything
    that must only happen once the commits so far are on disk; ``close()`` at the end."""

    def __init__(self, db_path: Path, *, period: float = SYNC_PERIOD, checkpoint_every: int = CHECKPOINT_COMMITS):
        self.db_path = db_path
        self.wal_path = db_path.with_name(db_path.name + "-wal")
        self.period = period
        self.checkpoint_every = checkpoint_every
        self.fsyncs = 0
        """How many fsyncs this has done (for tests and figures)."""
        self._committed = 0
        self._durable = 0
        self._since_checkpoint = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flight: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._checkpointer: sqlite3.Connection | None = None

    @property
    def dirty(self) -> bool:
        """Some commit is not yet known to be on disk."""
        return self._durable < self._committed

    def committed(self) -> None:
        """A transaction was committed: get it onto the disk soon (at once when there is no event loop)."""
        self._committed += 1
        self._since_checkpoint += 1
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush_now()
            return
        if self._loop is not loop:  # first use, or a new loop (a test's): nothing of the old one will run
            self._loop, self._timer, self._flight = loop, None, None
        if self._timer is None and self._flight is None:
            self._timer = loop.call_later(self.period, self._start)

    async def sync(self) -> None:
        """Return once every commit made before this call is on disk. Raises :class:`OSError` when the disk
        refuses (nothing that depended on it should happen then)."""
        target = self._committed
        while self._durable < target:
            await asyncio.shield(self._start())

    def close(self) -> None:
        """Make everything durable and let go of the worker (the caller closes its own connection after this)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        if self.dirty:
            self._flush_now()
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None

    # --- inside ----------------------------------------------------------------------------------------

    def _start(self) -> asyncio.Task[None]:
        """The barrier in flight, or a new one."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._timer, self._flight = loop, None, None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flight is None:
            self._flight = loop.create_task(self._barrier())
            self._flight.add_done_callback(_retrieve)
        return self._flight

    async def _barrier(self) -> None:
        loop = asyncio.get_running_loop()
        target, checkpoint = self._committed, self._checkpoint_due()
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sync")
        try:
            await loop.run_in_executor(self._worker, self._flush, checkpoint)
            self._durable = max(self._durable, target)
        except OSError as exc:
            log.error("journal.sync_failed", path=str(self.db_path), error=str(exc))
            raise
        finally:
            self._flight = None
            if self.dirty and self._timer is None:
                self._timer = loop.call_later(self.period, self._start)

    def _flush_now(self) -> None:
        target = self._committed
        self._flush(self._checkpoint_due())
        self._durable = max(self._durable, target)

    def _checkpoint_due(self) -> bool:
        if self._since_checkpoint < self.checkpoint_every:
            return False
        self._since_checkpoint = 0
        return True

    def _flush(self, checkpoint: bool) -> None:
        """Fsync the WAL, then checkpoint if asked (in the worker thread, or the caller's without a loop)."""
        started = time.monotonic()
        try:
            fd = os.open(self.wal_path, os.O_RDONLY)
        except FileNotFoundError:
            pass  # no WAL: everything is in the database file, which SQLite fsynced when it checkpointed
        else:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self.fsyncs += 1
        if checkpoint:
            self._checkpoint()
        seconds = time.monotonic() - started
        if seconds > 1.0:
            log.warning("journal.slow_sync", path=str(self.db_path), seconds=round(seconds, 3))

    def _checkpoint(self) -> None:
        """Copy the WAL into the database without waiting for the writer (it restarts the WAL when it may)."""
        try:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
                self._checkpointer.execute("PRAGMA synchronous=NORMAL")
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            log.warning("journal.checkpoint_failed", path=str(self.db_path), error=str(exc))


def _retrieve(task: asyncio.Task[None]) -> None:
    """A periodic barrier nobody awaits: its failure is logged in :meth:`WalSync._barrier`, not left dangling."""
    if not task.cancelled():
        task.exception()
