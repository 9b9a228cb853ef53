"""One role held through a PostgreSQL session-level advisory lock on a dedicated connection.

The lock lives as long as the session: a holder whose process dies or whose connection drops loses it at once
(PostgreSQL releases it when the backend sees the socket close; the session asks the server for TCP keep-alives so
that a silently vanished peer is noticed within seconds too). A waiter tries ``pg_try_advisory_lock`` every
``retry`` seconds, so another bridge takes over within seconds.

While it holds the lock, the lease runs the role's work (``lead``) and watches its connection: a probe
(``SELECT 1``) fails or does not answer within ``probe`` seconds -> the work is cancelled at once and the lease
waits again. A role whose work ends by itself (the PBX's application was taken by
another WebSocket) steps down: the lock is released and taken again only after ``retry``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import psycopg
import structlog

log = structlog.get_logger(__name__)

KEEPALIVES = "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"
"""Per-session server settings: the server drops a leader's session (and its lock) ~11 s after its peer vanished."""

DB_ERRORS = (OSError, psycopg.Error, TimeoutError)


class Role(Enum):
    DELIVERY = "delivery"
    """One per portal: drains the shared outbox with the portal's one leaky bucket."""
    PBX = "pbx"
    """One per PBX: opens the ARI application and the AMI session."""


def lock_key(role: Role, scope: str) -> int:
    """The advisory lock's bigint for ``role`` of ``scope`` (the portal's host, the PBX's id), stable everywhere."""
    digest = hashlib.sha256(f"b24-bridge/{role.value}/{scope}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(frozen=True)
class LeaseTiming:
    retry: float = 1.0
    """A waiter tries the lock this often; a holder that stepped down waits this long before trying again."""
    probe: float = 1.0
    """A holder checks its connection this often, and gives a probe this long to answer."""
    connect: float = 5.0
    """How long one connection attempt may take."""


Connection = psycopg.AsyncConnection[tuple[object, ...]]


class RoleTaken(Exception):
    """The role is held by another session: :attr:`holder` (its bridge id; "" unknown)."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


class Lease:
    """Holds ``role`` for ``scope`` whenever it can and runs ``lead()`` while it does (see the module docstring)."""

    def __init__(self, url: str, role: Role, scope: str, bridge_id: str, *, password: str = "",
                 timing: LeaseTiming = LeaseTiming()) -> None:  # fmt: skip
        self.url, self.role, self.scope, self.bridge_id = url, role, scope, bridge_id
        self.key = lock_key(role, scope)
        self.timing = timing
        self._password = password
        self.held = False
        self.holder = ""
        """Who holds the role now, as far as this bridge saw (its bridge id; "" unknown or nobody)."""
        self.takeovers = 0
        """How often this bridge took the role."""
        self.reachable = False
        """The leadership connection is up (leader or standby)."""
        self.changed_at = datetime.now(UTC)
        """When the role last changed hands here (taken, lost, or the database went away or came back)."""
        self.last_error = ""
        self.error_at: datetime | None = None

    @property
    def state(self) -> str:
        """For /status and logs: ``leader`` or ``standby``."""
        return "leader" if self.held else "standby"

    def _changed(self, *, held: bool | None = None, reachable: bool | None = None, error: str = "") -> None:
        if held is not None and held is not self.held:
            self.held, self.changed_at = held, datetime.now(UTC)
        if reachable is not None and reachable is not self.reachable:
            self.reachable, self.changed_at = reachable, datetime.now(UTC)
        if error:
            self.last_error, self.error_at = error, datetime.now(UTC)

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Forever: connect, wait for the lock, run ``lead()`` while it is held. Cancel to stop (releases it)."""
        unreachable = False
        while True:
            try:
                async with asyncio.timeout(self.timing.connect):  # not wait_for: on 3.11 it can swallow a cancel
                    conn = await self._open()
            except DB_ERRORS as exc:
                self._changed(reachable=False, error=_error(exc))
                if not unreachable:
                    log.warning("leadership.db_unreachable", role=self.role.value, error=_error(exc))
                unreachable = True
                await asyncio.sleep(self.timing.retry)
                continue
            unreachable = False
            self._changed(reachable=True)
            try:
                stepped_down = await self._serve(conn, lead)
            finally:
                self._changed(reachable=False)
                await _close(conn)
            await asyncio.sleep(self.timing.retry if stepped_down else 0)

    @contextlib.asynccontextmanager
    async def hold_now(self) -> AsyncIterator[None]:
        """Take the role at once, for a tool that must not run beside its holder (``b24-bridge replay``), and
        release it at the end. Raises :class:`RoleTaken` when another session holds it, a ``DB_ERRORS`` one when
        the database does not answer."""
        async with asyncio.timeout(self.timing.connect):
            conn = await self._open()
        try:
            if not await self._probe(conn, "SELECT pg_try_advisory_lock(%s::bigint)", self.key):
                holder = str(await self._probe(conn, HOLDER, self.key, self.key) or "").removeprefix("b24-bridge ")
                raise RoleTaken(holder)
            self._changed(held=True)
            self.holder = self.bridge_id
            log.info("leadership.acquired", role=self.role.value, scope=self.scope, bridge=self.bridge_id)
            yield
        finally:
            self._changed(held=False)
            await _close(conn)

    async def _open(self) -> Connection:
        kwargs: dict[str, Any] = {"application_name": f"b24-bridge {self.bridge_id}"[:63], "options": KEEPALIVES}
        if self._password:
            kwargs["password"] = self._password
        conn: Connection = await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, connect_timeout=max(1, int(self.timing.connect)), **kwargs
        )
        return conn

    async def _serve(self, conn: Connection, lead: Callable[[], Awaitable[None]]) -> bool:
        """Wait for the lock on ``conn`` and hold it; True if the role's work ended by itself (stepped down)."""
        try:
            await self._acquire(conn)
        except DB_ERRORS as exc:
            self._changed(error=_error(exc))
            log.warning("leadership.db_lost", role=self.role.value, held=False, error=_error(exc))
            return False
        self._changed(held=True)
        self.holder = self.bridge_id
        self.takeovers += 1
        log.info("leadership.acquired", role=self.role.value, scope=self.scope, bridge=self.bridge_id)
        work = asyncio.ensure_future(lead())
        watch = asyncio.ensure_future(self._watch(conn))
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._changed(held=False)
            for task in (work, watch):
                task.cancel()
            await asyncio.gather(work, watch, return_exceptions=True)
        if work.done() and not work.cancelled() and watch.cancelled():
            problem = work.exception()
            log.warning("leadership.stepped_down", role=self.role.value, scope=self.scope,
                        reason=repr(problem) if problem else "the role's work ended")  # fmt: skip
            with contextlib.suppress(*DB_ERRORS):
                await self._probe(conn, "SELECT pg_advisory_unlock(%s::bigint)", self.key)
            return True
        log.warning("leadership.lost", role=self.role.value, scope=self.scope, reason="database connection lost")
        self.holder = ""
        return False

    async def _acquire(self, conn: Connection) -> None:
        waiting_for: str | None = None
        while not await self._probe(conn, "SELECT pg_try_advisory_lock(%s::bigint)", self.key):
            holder = str(await self._probe(conn, HOLDER, self.key, self.key) or "").removeprefix("b24-bridge ")
            self.holder = holder
            if holder != waiting_for:
                log.info("leadership.waiting", role=self.role.value, scope=self.scope, holder=holder or "unknown")
                waiting_for = holder
            await asyncio.sleep(self.timing.retry)

    async def _watch(self, conn: Connection) -> None:
        """Return when the connection is gone: a probe failed or did not answer in time."""
        while True:
            try:
                await self._probe(conn, "SELECT 1")
            except DB_ERRORS as exc:
                self._changed(error=_error(exc))
                log.warning("leadership.db_lost", role=self.role.value, held=True, error=_error(exc))
                return
            await asyncio.sleep(self.timing.probe)

    async def _probe(self, conn: Connection, sql: str, *args: object) -> object:
        async with asyncio.timeout(self.timing.probe):
            return await self._query(conn, sql, *args)

    @staticmethod
    async def _query(conn: Connection, sql: str, *args: object) -> object:
        cursor = await conn.execute(sql, args or None)  # type: ignore[arg-type]
        row = await cursor.fetchone()
        return row[0] if row else None


HOLDER = (
    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.classid = ((%s::bigint >> 32) & 4294967295)::oid AND l.objid = (%s::bigint & 4294967295)::oid"
)
"""The session that holds a lock, by its application_name (``b24-bridge <bridge id>``)."""


async def _close(conn: Connection) -> None:
    """Close the session: the server releases its lock at once. A dead server is not waited for."""
    with contextlib.suppress(*DB_ERRORS):
        async with asyncio.timeout(2.0):
            await conn.close()


def _error(exc: BaseException) -> str:
    """What went wrong in one line, without the URL's password (psycopg's messages carry host and port only)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
