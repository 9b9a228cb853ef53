"""The SQLite journal called without ``await``: the same rules as :class:`~bridge.journal.store.AsyncJournal`,
for the code that runs outside the event loop or in one synchronous step (the CLI, the dispatcher's step, the
tests). On SQLite a journal coroutine never suspends, so each call runs it to its end at once
(:func:`~bridge.journal.db.drive`): no thread, no event loop, no cost beyond the coroutine itself."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge.domain.commands import CrmCommand
from bridge.journal.db import SqliteDb, drive
from bridge.journal.durability import WalSync
from bridge.journal.marks import DoneMark
from bridge.journal.reading import Clock
from bridge.journal.rows import CallRow, OpRow, PendingOp
from bridge.journal.store import AsyncJournal


class Journal:
    """The SQLite outbox, synchronous. :attr:`aio` is the same journal behind the async interface."""

    def __init__(self, aio: AsyncJournal) -> None:
        assert isinstance(aio._db, SqliteDb), "only SQLite runs without await"
        self.aio = aio
        self._db: SqliteDb = aio._db
        self.path = Path(self._db.where)

    @classmethod
    def open(cls, path: Path | str, *, clock: Clock = time.time, bridge: str = "") -> Journal:
        """Open (creating if needed) the journal at ``path`` and bring its schema up to date."""
        return cls(AsyncJournal.open_sqlite(path, clock=clock, bridge=bridge))

    @property
    def wal(self) -> WalSync:
        """Gets commits onto the disk (see :mod:`bridge.journal.durability`)."""
        return self._db.wal

    @property
    def _conn(self) -> Any:
        return self._db.conn

    def _x(self, sql: str, params: Any = ()) -> Any:
        return self._db.conn.execute(sql, params)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit, committed when the outermost one ends; nested uses join the outermost one."""
        joined = drive(self.aio._enter())
        try:
            yield
        except BaseException:
            drive(self.aio._leave(joined, ok=False))
            raise
        drive(self.aio._leave(joined, ok=True))

    def close(self) -> None:
        drive(self.aio.close())

    def take_over(self) -> tuple[int, int]:
        return drive(self.aio.take_over())

    async def sync(self) -> None:
        await self.aio.sync()

    def append(self, cmd: CrmCommand, *, linkedid: str = "", pbx_call: str = "", line: str = "") -> int:
        return drive(self.aio.append(cmd, linkedid=linkedid, pbx_call=pbx_call, line=line))

    def mark_sent(self, op_ids: list[int]) -> list[int]:
        return drive(self.aio.mark_sent(op_ids))

    def mark_done(self, op_id: int, result: Any = None, *, call_id: str | None = None, note: str = "delivered") -> None:
        drive(self.aio.mark_done(op_id, result, call_id=call_id, note=note))

    def mark_done_many(self, marks: Sequence[DoneMark]) -> None:
        drive(self.aio.mark_done_many(marks))

    def mark_failed(
        self, op_id: int, error: str, permanent: bool, retry_at: float | None = None, *, arrived: bool = True
    ) -> list[tuple[int, str]]:
        return drive(self.aio.mark_failed(op_id, error, permanent, retry_at, arrived=arrived))

    def set_call_id(self, crm_leg: str, call_id: str) -> None:
        drive(self.aio.set_call_id(crm_leg, call_id))

    def take_offline(self, register_timeout: float) -> list[str]:
        return drive(self.aio.take_offline(register_timeout))

    def go_offline(self, crm_leg: str) -> None:
        drive(self.aio.go_offline(crm_leg))

    def requeue_sent(self, op_ids: Collection[int] | None = None) -> int:
        return drive(self.aio.requeue_sent(op_ids))

    def retry_now(self) -> int:
        return drive(self.aio.retry_now())

    def ready(self, limit: int = 50, *, chain_limit: int = 50) -> list[PendingOp]:
        return drive(self.aio.ready(limit, chain_limit=chain_limit))

    def next_due(self, register_timeout: float) -> float | None:
        return drive(self.aio.next_due(register_timeout))

    def calls_of(self, legs: list[str]) -> dict[str, CallRow]:
        return drive(self.aio.calls_of(legs))

    def calls(
        self, status: str | None = None, since: datetime | float | None = None, crm_leg: str | None = None
    ) -> list[CallRow]:
        return drive(self.aio.calls(status, since, crm_leg))

    def has_call(self, crm_leg: str) -> bool:
        return drive(self.aio.has_call(crm_leg))

    def legs_since(self, created: float) -> set[str]:
        return drive(self.aio.legs_since(created))

    def operations(self, crm_leg: str | None) -> list[OpRow]:
        return drive(self.aio.operations(crm_leg))

    def depth(self) -> int:
        return drive(self.aio.depth())

    def oldest_pending_age(self, now: float) -> float:
        return drive(self.aio.oldest_pending_age(now))

    def _refresh_call(self, leg: str, now: float) -> None:
        drive(self.aio._refresh_call(leg, now))

    @property
    def _clock(self) -> Clock:
        return self.aio._clock
