"""The journal on PostgreSQL (psycopg 3, async): a shared outbox for several bridges.

The journal's SQL is written once in SQLite's words; :func:`translate` rewrites the few that PostgreSQL spells
otherwise (placeholders, ``INSERT OR ...``, ``INDEXED BY``, ``MAX(a, b)``, ``IS ?``). A commit returns once the
server has it on disk (``synchronous_commit`` on, PostgreSQL's default: keep it so), so nothing needs an fsync of
ours. One connection per journal; the tasks of one process take turns on it a transaction at a time.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from bridge.journal.db import Params
from bridge.journal.queries import OUTBOX_CHANNEL
from bridge.journal.schema import migrate_postgres

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT = 10


class Row(tuple[Any, ...]):
    """A row by position or by column name, like ``sqlite3.Row``."""

    names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self.names)


def _row_factory(cursor: Any) -> Any:
    names = {column.name: i for i, column in reversed(list(enumerate(cursor.description or ())))}

    def make(values: Sequence[Any]) -> Row:
        row = Row(values)
        row.names = names
        return row

    return make


class Fetched:
    """A statement's rows, read at once (the journal's statements return a batch at most)."""

    def __init__(self, rows: list[Row], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Row]:
        return self._rows


_NAMED = re.compile(r":([A-Za-z_]\w*)")
_REWRITES = [
    (re.compile(r"\s+INDEXED BY \w+"), ""),
    (re.compile(r"\bMAX\(0, "), "GREATEST(0, "),
    (re.compile(r"\bIS \?"), "IS NOT DISTINCT FROM ?"),
]
_cache: dict[str, str] = {}


def translate(sql: str) -> str:
    """SQLite's spelling of one of the journal's statements -> PostgreSQL's (cached: the statements are few)."""
    done = _cache.get(sql)
    if done is not None:
        return done
    text = sql.replace("%", "%%")
    for pattern, spelled in _REWRITES:
        text = pattern.sub(spelled, text)
    if text.lstrip().startswith("INSERT OR IGNORE INTO"):
        text = text.replace("INSERT OR IGNORE INTO", "INSERT INTO", 1) + " ON CONFLICT DO NOTHING"
    elif text.lstrip().startswith("INSERT OR REPLACE INTO meta"):
        text = text.replace("INSERT OR REPLACE INTO", "INSERT INTO", 1)
        text += " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    text = _NAMED.sub(r"%(\1)s", text).replace("?", "%s")
    _cache[sql] = text
    return text


def redact(url: str) -> str:
    """The url without a password in it (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


Connect = Callable[[], Awaitable["psycopg.AsyncConnection[Any]"]]


class PgDb:
    """One connection, taken in turns; a connection the server dropped (a restart, a failover) is opened anew at
    the next statement outside a transaction (the transaction it broke fails, and its caller tries again)."""

    dialect = "postgres"

    def __init__(self, conn: psycopg.AsyncConnection[Any], where: str, reconnect: Connect) -> None:
        self.conn = conn
        self.where = where
        self._reconnect = reconnect
        self._turn = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    @classmethod
    async def connect(cls, url: str, *, password: str | None) -> PgDb:
        """Connect and bring the schema up to date. Errors name the database without its password."""
        where = redact(url)
        extra: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, "application_name": "b24-bridge"}
        if password is not None:
            extra["password"] = password

        async def connect() -> psycopg.AsyncConnection[Any]:
            return await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=_row_factory, **extra)

        conn = await connect()
        try:
            version = await migrate_postgres(conn)
        except BaseException:
            await conn.close()
            raise
        log.debug("journal.opened", path=where, schema=version)
        return cls(conn, where, connect)

    async def _live(self) -> psycopg.AsyncConnection[Any]:
        """The connection, opened anew if the server dropped it (only between transactions)."""
        if self.conn.closed or self.conn.broken:
            self.conn = await self._reconnect()
            log.warning("journal.reconnected", path=self.where)
        return self.conn

    def _mine(self) -> bool:
        return self._owner is not None and self._owner is asyncio.current_task()

    async def _run(self, sql: str, params: Params) -> Fetched:
        conn = self.conn if self._mine() else await self._live()
        cur = await conn.execute(translate(sql), params)
        rows = await cur.fetchall() if cur.description is not None else []
        return Fetched(rows, cur.rowcount)

    async def execute(self, sql: str, params: Params = ()) -> Fetched:
        if self._mine():
            return await self._run(sql, params)
        async with self._turn:  # not inside another task's transaction
            return await self._run(sql, params)

    async def insert(self, sql: str, params: Params) -> int:
        row = (await self.execute(sql + " RETURNING id", params)).fetchone()
        assert row is not None
        return int(row[0])

    async def begin(self) -> None:
        await self._turn.acquire()
        self._owner = asyncio.current_task()
        try:
            await (await self._live()).execute("BEGIN")
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        self._owner = None
        self._turn.release()

    async def commit(self) -> None:
        try:
            await self.conn.execute("COMMIT")
        finally:
            self._release()

    async def rollback(self) -> None:
        try:
            if not self.conn.broken:  # a dropped connection took its transaction with it
                await self.conn.execute("ROLLBACK")
        finally:
            self._release()

    def in_transaction(self) -> bool:
        return self._mine()

    async def sync(self) -> None:
        """A commit is on the server's disk when it returns."""

    async def close(self) -> None:
        await self.conn.close()

    async def listen(self, wake: Callable[[], None], *, retry_max: float = 10.0) -> None:
        """Call ``wake`` each time a transaction that appended commits (on a connection of its own), until
        cancelled; once more each time it (re)starts listening, for what came while it was not. A connection the
        server drops is opened again, after a growing pause."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((psycopg.Error, OSError)),
            wait=wait_exponential(multiplier=0.5, max=retry_max),
            before_sleep=lambda state: log.warning(
                "journal.listen_failed",
                where=self.where,
                error=str(state.outcome.exception()) if state.outcome else "",
                note="polled meanwhile; listening again",
            ),
        )
        async for attempt in retrying:
            with attempt:
                conn = await self._reconnect()
                try:
                    await conn.execute(f"LISTEN {OUTBOX_CHANNEL}")
                    wake()
                    async for _ in conn.notifies():
                        wake()
                finally:
                    await conn.close()
