"""The portal's leaky bucket kept in PostgreSQL: one budget for every request of every bridge of one database.

Bitrix24 counts a portal's requests in one bucket (``rate``/s drain, ``burst`` size) whoever sends them, so the
bridges of one PostgreSQL journal share one row of ``portal_budget``: its ``level`` at the server's time ``at``.
A bridge *reserves* tokens with one atomic statement (:data:`RESERVE`): the row drains to the server's clock and
grows by the tokens asked for; the answer, the level after, says when each token is due: at once while the level
stays within the bucket's size, else ``(level - size) / rate`` seconds later, when the bucket will have drained to
it (GCRA: the level above the size is the queue of slots already promised, first come, first served, across all
bridges). A request sends when its slot is due, so every bridge together never lifts the portal's level above the
size, and none polls.

Round trips: one task of the process asks at a time, for as many tokens as tasks wait (at most :data:`GRANT`), and
waits for its own slot before the next asks; a busy bridge thus makes one round trip per up to ``GRANT`` requests,
an idle one one per request (2 a second at most on a standard plan: nothing next to the HTTP request it guards).
Worst case: a bridge that dies has at most ``GRANT`` slots promised and unused; they count as spent, so the others
wait at most ``GRANT / rate`` s longer (2 s on a standard plan), once. A token not used within :data:`STALE` s of
its slot is dropped (using it later would count it as drained too early).

When PostgreSQL does not answer within ``ask`` s (or cannot be reached), the bridge falls back to its own pacing at
a conservative share: the portal's rate and size divided by the number of bridges that took from this budget in
the last :data:`TAKERS_WINDOW` s (2 when it never saw the database), starting from a full bucket; it tries the
database again after ``retry`` s, and its first reservation then includes what it sent meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog
from aiolimiter import AsyncLimiter

from bridge.crm.pacing import SAFETY_MARGIN, bucket_level, fill_bucket
from bridge.leadership.lease import DB_ERRORS, _error

log = structlog.get_logger(__name__)

GRANT = 4
"""At most this many tokens per round trip (fewer on a small bucket: a tenth of its size)."""
STALE = 0.1
"""Seconds after its slot a reserved token is still used."""
TAKERS_WINDOW = 600.0
"""A bridge counts towards the fallback share if it took from the budget this recently (seconds)."""
TAKERS_REFRESH = 60.0
"""How often a bridge says it takes from the budget and counts the others (seconds)."""
UNSEEN_BRIDGES = 2
"""The share a bridge assumes when it never reached the database: at least itself and one other."""

_DRAINED = "greatest(0.0, b.level - %(rate)s * greatest(0.0, extract(epoch FROM clock_timestamp() - b.at)::float8))"
RESERVE = f"""
INSERT INTO portal_budget AS b (portal, level, at)
VALUES (%(portal)s, CASE WHEN %(full)s THEN %(size)s ELSE 0.0 END + %(take)s, clock_timestamp())
ON CONFLICT (portal) DO UPDATE SET
    level = CASE WHEN %(full)s THEN greatest(%(size)s, {_DRAINED}) ELSE {_DRAINED} END + %(take)s,
    at = clock_timestamp()
RETURNING level
"""
"""One atomic statement: drain the portal's row to now, add ``take`` tokens (``full``: the portal said its bucket
overflowed, start from the size), answer the level after. Concurrent takers queue on the row's lock (the clock is
read after it is taken). A server clock stepped back drains nothing once, then ``at`` follows it (no stall)."""

SEEN = """
INSERT INTO budget_takers (portal, bridge, seen) VALUES (%(portal)s, %(bridge)s, clock_timestamp())
ON CONFLICT (portal, bridge) DO UPDATE SET seen = EXCLUDED.seen
"""
TAKERS = """
SELECT count(*) FROM budget_takers
WHERE portal = %(portal)s AND seen > clock_timestamp() - make_interval(secs => %(window)s)
"""


@dataclass(frozen=True)
class BudgetTiming:
    ask: float = 1.0
    """A reservation (or the connection it needs) that takes longer than this falls back to local pacing."""
    retry: float = 5.0
    """After a fallback, the database is tried again this much later."""


def due_times(level: float, take: int, size: float, rate: float) -> list[float]:
    """Seconds from now until each of the ``take`` tokens a reservation that left ``level`` got may be used."""
    return [max(0.0, (level - take + i - size) / rate) for i in range(1, take + 1)]


class SharedBudget:
    """The budget of one portal for this process (its clients share it; see the module docstring)."""

    def __init__(self, url: str, *, password: str | None, portal: str, bridge_id: str, rate: float, burst: int,
                 timing: BudgetTiming = BudgetTiming()) -> None:  # fmt: skip
        self.url, self.portal, self.bridge_id = url, portal.lower(), bridge_id
        self.rate = rate
        self.size = float(max(1, burst - SAFETY_MARGIN))
        self.grant = max(1, min(GRANT, int(self.size) // 10))
        self.timing = timing
        self._password = password
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._turn = asyncio.Lock()
        self._waiting = 0
        self._pool: deque[float] = deque()
        """Monotonic times at which this process's reserved, unused tokens are due."""
        self._full = False
        self._fallback: AsyncLimiter | None = None
        self._retry_at = 0.0
        self._counted_at = -TAKERS_REFRESH
        self.bridges = 0
        """Bridges that took from this budget lately, as last counted (0: never reached the database)."""
        self.reservations = 0
        """Round trips to the shared bucket."""

    @property
    def shared(self) -> bool:
        """The budget is kept in PostgreSQL now (False while falling back to local pacing)."""
        return self._fallback is None

    def overflowed(self) -> None:
        """The portal answered 503 QUERY_LIMIT_EXCEEDED: its bucket is full, whatever the row says."""
        self._full = True
        self._pool.clear()
        if self._fallback is not None:
            fill_bucket(self._fallback)

    async def take(self) -> None:
        """Wait until this process may send one request to the portal."""
        self._waiting += 1
        try:
            await self._turn.acquire()  # FIFO: one task at a time asks, or waits for its slot
        finally:
            self._waiting -= 1
        try:
            due = None if self._fallback is not None and time.monotonic() < self._retry_at else await self._slot()
            if due is None:
                assert self._fallback is not None
                await self._fallback.acquire()
            else:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
        finally:
            self._turn.release()

    async def _slot(self) -> float | None:
        """The monotonic time this request's slot is due; None when the database failed (now falling back)."""
        now = time.monotonic()
        while self._pool and self._pool[0] + STALE < now:
            self._pool.popleft()
        if self._pool:
            return self._pool.popleft()
        take = min(self.grant, 1 + self._waiting)
        try:
            async with asyncio.timeout(self.timing.ask):
                level = await self._reserve(take)
        except DB_ERRORS as exc:
            await self._fall_back(exc)
            return None
        asked = time.monotonic()
        dues = [asked + wait for wait in due_times(level, take, self.size, self.rate)]
        self._pool.extend(dues[1:])
        return dues[0]

    async def _reserve(self, take: int) -> float:
        conn = await self._connection()
        extra = 0.0
        if self._fallback is not None:  # back from local pacing: what it sent is still in the portal's bucket
            extra = bucket_level(self._fallback)
        if time.monotonic() - self._counted_at >= TAKERS_REFRESH:
            await self._count_takers(conn)
        params = {"portal": self.portal, "rate": self.rate, "size": self.size, "take": take + extra, "full": self._full}
        cursor = await conn.execute(RESERVE, params)
        row = await cursor.fetchone()
        assert row is not None
        self.reservations += 1
        self._full = False
        if self._fallback is not None:
            self._fallback = None
            log.info("budget.restored", portal=self.portal, bridges=self.bridges)
        return float(row[0])  # the level after: this reservation's tokens are its top ``take``

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        kwargs: dict[str, Any] = {"application_name": f"b24-bridge {self.bridge_id} budget"[:63]}
        if self._password:
            kwargs["password"] = self._password
        self._conn = await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, connect_timeout=max(1, int(self.timing.ask + 0.999)), **kwargs
        )
        self._counted_at = -TAKERS_REFRESH
        return self._conn

    async def _count_takers(self, conn: psycopg.AsyncConnection[Any]) -> None:
        params = {"portal": self.portal, "bridge": self.bridge_id, "window": TAKERS_WINDOW}
        await conn.execute(SEEN, params)
        row = await (await conn.execute(TAKERS, params)).fetchone()
        first = self.bridges == 0
        self.bridges = max(1, int(row[0]) if row else 1)
        self._counted_at = time.monotonic()
        if first:
            log.info("budget.shared", portal=self.portal, bridges=self.bridges, rate=self.rate, size=self.size)

    async def _fall_back(self, exc: BaseException) -> None:
        """Pace locally at this bridge's share of the portal, from a full bucket; try the database again later."""
        self._retry_at = time.monotonic() + self.timing.retry
        self._pool.clear()
        await self._drop_connection()
        if self._fallback is not None:
            return
        share = self.bridges or UNSEEN_BRIDGES
        size = max(1.0, self.size / share)
        self._fallback = AsyncLimiter(size, size / (self.rate / share))
        fill_bucket(self._fallback)  # the others may just have spent the portal's budget
        log.warning("budget.fallback", portal=self.portal, error=_error(exc) or "no answer in time",
                    bridges=share, rate=round(self.rate / share, 3), retry=self.timing.retry)  # fmt: skip

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*DB_ERRORS):
                async with asyncio.timeout(1.0):
                    await conn.close()

    async def close(self) -> None:
        await self._drop_connection()
