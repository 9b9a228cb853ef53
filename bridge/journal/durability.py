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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
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
    that must only happen once the commits so far are on disk; ``close()`` at the end."""

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
        self._since_checkpoint = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._fd: int | None = None
        self._again = False

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
        self._adopt(loop)
        if self._timer is None and not self._running:
            self._timer = loop.call_later(self.period, self._tick)

    async def sync(self) -> None:
        """Return once every commit made before this call is on disk. Raises :class:`OSError` when the disk
        refuses (nothing that depended on it should happen then)."""
        target = self._committed
        if self._durable >= target:
            return
        loop = asyncio.get_running_loop()
        self._adopt(loop)
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append((target, waiter))
        if not self._running:
            self._launch(loop)
        await waiter

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
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # --- inside ----------------------------------------------------------------------------------------

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """First use, or a new loop (a test's): nothing scheduled on the old one will run."""
        if self._loop is not loop:
            self._loop, self._timer, self._running, self._waiters = loop, None, False, []

    def _tick(self) -> None:
        self._timer = None
        if self.dirty and not self._running and self._loop is not None:
            self._launch(self._loop)

    def _launch(self, loop: asyncio.AbstractEventLoop) -> None:
        """One fsync in the worker thread for everything committed so far; it reports back to the loop itself."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-sync")
        self._running = True
        self._worker.submit(self._work, loop, self._committed, self._checkpoint_due())

    def _work(self, loop: asyncio.AbstractEventLoop, target: int, checkpoint: bool) -> None:
        """In the worker thread."""
        error: OSError | None = None
        try:
            self._flush(checkpoint)
        except OSError as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(self._landed, loop, target, error)

    def _landed(self, loop: asyncio.AbstractEventLoop, target: int, error: OSError | None) -> None:
        """Back on the loop: wake the waiters this fsync covered (or tell them all it failed), go on if needed."""
        if loop is not self._loop:
            return
        self._running = False
        if error is not None:
            log.error("journal.sync_failed", path=str(self.db_path), error=str(error))
            waiters, self._waiters = self._waiters, []
            for _target, waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(error)
        else:
            self._durable = max(self._durable, target)
            still: list[tuple[int, asyncio.Future[None]]] = []
            for wanted, waiter in self._waiters:
                if wanted > self._durable:
                    still.append((wanted, waiter))
                elif not waiter.done():
                    waiter.set_result(None)
            self._waiters = still
        if self._waiters:
            self._launch(loop)
        elif self.dirty and self._timer is None:
            self._timer = loop.call_later(self.period, self._tick)

    def flush_now(self) -> None:
        """Make everything durable now, on the caller's thread (once at a start or an end, not per call)."""
        self._flush_now()

    def _flush_now(self) -> None:
        target = self._committed
        self._flush(self._checkpoint_due())
        self._durable = max(self._durable, target)

    def _checkpoint_due(self) -> bool:
        if self._since_checkpoint < self.checkpoint_every and not self._again:
            return False
        self._since_checkpoint, self._again = 0, False
        return True

    def _flush(self, checkpoint: bool) -> None:
        """Fsync the WAL, then checkpoint if asked (in the worker thread, or the caller's without a loop)."""
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
