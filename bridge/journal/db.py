"""The journal's connection to its database: one small interface, an SQLite and a PostgreSQL implementation.

The journal's rules (:mod:`bridge.journal.store`, :mod:`.marks`, :mod:`.reading`) are written once, as coroutines
that run their SQL through :meth:`Db.execute`. The SQL is SQLite's; :mod:`bridge.journal.pg` translates the few
spellings PostgreSQL writes differently. On SQLite a statement runs on the caller's thread and the coroutine
never suspends (no thread hop per operation, see :func:`drive`); on PostgreSQL it goes over the network.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol, TypeVar

from bridge.journal.durability import WalSync

T = TypeVar("T")
Params = Sequence[Any] | dict[str, Any]


class Rows(Protocol):
    """What a statement gives back: its rows (by position and by column name), how many it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Db(Protocol):
    dialect: str
    """``sqlite`` or ``postgres``."""
    where: str
    """The database, for messages (a path, or the url without its password)."""

    async def execute(self, sql: str, params: Params = ()) -> Rows: ...

    async def insert(self, sql: str, params: Params) -> int:
        """An INSERT into ``operations``; returns the new row's id."""
        ...

    async def begin(self) -> None:
        """Start a transaction (waiting, on PostgreSQL, until no other task of this process has one open)."""
        ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    def in_transaction(self) -> bool:
        """The calling task has a transaction open (nested ones join it)."""
        ...

    async def sync(self) -> None:
        """Everything committed so far is on disk."""
        ...

    async def close(self) -> None: ...


class SqliteDb:
    """One sqlite3 connection (autocommit mode; transactions are explicit) and its :class:`WalSync`."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, wal: WalSync) -> None:
        self.conn = conn
        self.wal = wal
        self.where = str(wal.db_path)
        self._open = False

    async def execute(self, sql: str, params: Params = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    async def insert(self, sql: str, params: Params) -> int:
        rowid = self.conn.execute(sql, params).lastrowid
        assert rowid is not None
        return rowid

    async def write(self, sql: str, params: Params) -> sqlite3.Cursor:
        """One statement outside any transaction: atomic and committed by itself (no BEGIN and COMMIT of its own to
        run), on its way to the disk as a commit is."""
        assert not self._open, "write() is for a statement outside a transaction"
        cur = self.conn.execute(sql, params)
        self.wal.committed()
        return cur

    async def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self._open = True

    async def commit(self) -> None:
        self._open = False
        self.conn.execute("COMMIT")
        self.wal.committed()

    async def rollback(self) -> None:
        self._open = False
        self.conn.execute("ROLLBACK")

    def in_transaction(self) -> bool:
        return self._open  # a coroutine here never suspends: no other task can be inside

    async def sync(self) -> None:
        await self.wal.sync()

    async def close(self) -> None:
        self.wal.close()
        self.conn.close()


def drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a journal coroutine on SQLite to its end, here and now (it never suspends there: no event loop needed,
    no thread hop). Raises :class:`RuntimeError` if it does suspend, which only a network database would do."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a journal operation waited for I/O; use the journal with await")
