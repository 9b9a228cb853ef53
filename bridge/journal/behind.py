"""The dispatcher's outbox on a journal that awaits (PostgreSQL): an ordered write-behind queue.

A call's step is synchronous (:mod:`bridge.dispatch`), and a PostgreSQL commit is a network round trip, so the step
cannot wait for it. :meth:`WriteBehind.append` queues the operation and returns; one writer task commits the queue
in its order (the order of the steps, so per-call order holds) and tells delivery after each commit. Delivery
sends only what it reads from the journal, so an operation is still written before it is sent. A database that
fails keeps the queue waiting at its head (order kept) and is tried again; a ``kill -9`` loses what was queued and
not yet committed (milliseconds of appends; recovery on the next start treats those calls as never journaled).
On SQLite the dispatcher appends directly (a commit there costs a ``write``): this queue is for PostgreSQL only.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from bridge.domain.commands import CrmCommand
from bridge.journal.store import AsyncJournal

log = structlog.get_logger(__name__)

REMEMBERED_LEGS = 10_000
"""How many legs this process journaled :meth:`WriteBehind.wrote` remembers (a call does not last that many)."""

Write = Callable[[], Awaitable[Any]]


class WriteBehind:
    """Appends (and other small writes, such as the distribution tallies) committed in order by :meth:`run`."""

    def __init__(self, journal: AsyncJournal, written: Callable[[], None], *, max_wait: float = 5.0) -> None:
        self.journal = journal
        self.written = written
        """Called after each commit of an append (delivery's notify)."""
        self.max_wait = max_wait
        self._queue: deque[tuple[Write, bool]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._legs: OrderedDict[str, None] = OrderedDict()

    def append(self, cmd: CrmCommand, *, linkedid: str = "", pbx_call: str = "", line: str = "") -> int:
        """Queue ``cmd`` for the journal; returns 0 (its operation id is known once it is committed)."""
        leg: str | None = getattr(cmd, "crm_leg", None)
        if leg:
            self._legs[leg] = None
            self._legs.move_to_end(leg)
            while len(self._legs) > REMEMBERED_LEGS:
                self._legs.popitem(last=False)
        self._put(lambda: self.journal.append(cmd, linkedid=linkedid, pbx_call=pbx_call, line=line), notify=True)
        return 0

    def later(self, write: Write) -> None:
        """Queue another write, committed in its turn."""
        self._put(write, notify=False)

    def wrote(self, leg: str) -> bool:
        """This process journaled ``leg`` (committed or still queued)."""
        return leg in self._legs

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _put(self, write: Write, *, notify: bool) -> None:
        self._queue.append((write, notify))
        self._idle.clear()
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                write, notify = self._queue[0]
                await self._commit(write)
                self._queue.popleft()
                if notify:
                    self.written()
            self._idle.set()

    async def _commit(self, write: Write) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((psycopg.Error, OSError)),
            wait=wait_exponential(multiplier=0.2, max=self.max_wait),
            before_sleep=lambda state: log.error(
                "journal.write_failed",
                where=self.journal.where,
                error=str(state.outcome.exception()) if state.outcome else "",
                queued=len(self._queue),
                note="the queue waits, in order, and is written again",
            ),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await write()
        except Exception as exc:  # not the database's fault (a command it cannot hold): that write alone is dropped
            log.error("journal.write_dropped", where=self.journal.where, error=repr(exc))

    async def drain(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until everything queued is committed; True if it is."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True
