"""One writer per journal: the daemon holds ``<journal>.lock`` while it runs, and ``replay`` needs it too.

Replay and a running daemon sending the same calls at once could send something twice; the lock makes that
impossible rather than a rule in the README. The lock is an OS file lock, so it is released when the holder
dies, even by ``kill -9``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


class JournalBusy(Exception):
    """Another process (the daemon, or another replay) is writing this journal."""


def lock_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ".lock")


@contextlib.contextmanager
def exclusive(journal: Path, *, holder: str) -> Iterator[None]:
    """Hold the journal's lock for the block; raise :class:`JournalBusy` naming who holds it."""
    path = lock_path(journal)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise JournalBusy(f"the journal {journal} is in use by {owner}; stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder} (pid {os.getpid()})".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
