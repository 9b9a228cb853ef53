"""The journal's figures read without waiting, for a journal that awaits (PostgreSQL): the status page, ``/healthz``
and the metrics are synchronous, so a task refreshes what they read every ``period`` seconds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import psycopg
import structlog

from bridge.journal.marks import JournalError
from bridge.journal.rows import CallRow, OpRow
from bridge.journal.store import AsyncJournal

log = structlog.get_logger(__name__)

PARKED_READ = 50
"""The most recent failed calls whose operations are kept (the status page shows the last few)."""
UNSETTLED = frozenset({"open", "ended"})


class CachedReads:
    """The reading face :class:`~bridge.ops.status.sources.StatusSources` and the daemon's health use, from a copy.
    When the last refresh failed, every read raises :class:`JournalError` with the reason."""

    def __init__(self, journal: AsyncJournal, legs: Callable[[], Iterable[str]], *, period: float = 1.0) -> None:
        self.journal = journal
        self.legs = legs
        """The legs whose rows the status page wants (the recently finished calls')."""
        self.period = period
        self.path = journal.where
        self.error = ""
        self._depth = 0
        self._age = 0.0
        self._at = time.time()
        self._failed: list[CallRow] = []
        self._rows: dict[str, CallRow] = {}
        self._ops: dict[str, list[OpRow]] = {}

    async def refresh(self) -> None:
        """Read the figures once; a database error is kept as :attr:`error` (logged when it begins)."""
        j = self.journal
        try:
            now = time.time()
            depth, age = await j.depth(), await j.oldest_pending_age(now)
            failed = (await j.calls(status="failed"))[-PARKED_READ:]
            ops = {row.crm_leg: await j.operations(row.crm_leg) for row in failed}
            rows = dict(self._rows)
            for leg in set(self.legs()):
                known = rows.get(leg)
                if known is None or known.state in UNSETTLED:
                    found = await j.calls(crm_leg=leg)
                    if found:
                        rows[leg], ops[leg] = found[0], await j.operations(leg)
        except (psycopg.Error, OSError, JournalError) as exc:
            if not self.error:
                log.error("journal.unreadable", where=j.where, error=str(exc))
            self.error = str(exc) or type(exc).__name__
            return
        wanted = set(self.legs())
        self._rows = {leg: row for leg, row in rows.items() if leg in wanted}
        keep = wanted | {row.crm_leg for row in failed}
        self._ops = {leg: o for leg, o in {**self._ops, **ops}.items() if leg in keep}
        self._depth, self._age, self._at, self._failed, self.error = depth, age, now, failed, ""

    async def run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.period)

    def _check(self) -> None:
        if self.error:
            raise JournalError(self.error)

    def depth(self) -> int:
        self._check()
        return self._depth

    def oldest_pending_age(self, now: float) -> float:
        self._check()
        return self._age + max(0.0, now - self._at) if self._age else 0.0

    def calls(self, status: str | None = None, *, crm_leg: str | None = None) -> list[CallRow]:
        self._check()
        if crm_leg is not None:
            row = self._rows.get(crm_leg)
            return [row] if row is not None else []
        assert status == "failed", "only the failed calls and single legs are kept"
        return list(self._failed)

    def operations(self, crm_leg: str) -> list[OpRow]:
        self._check()
        return list(self._ops.get(crm_leg, []))
