"""What distribution counts across calls: answered calls today per extension (``evenly``) and the last manager each
lead distribution chose (round robin); kept in a :class:`TallyStore` (the journal) when there is one, so that a
restart goes on where it stopped. A store that fails is logged and the counts go on in memory."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol, TypeVar

import structlog

from bridge.dispatch.kept import KeptView

log = structlog.get_logger(__name__)
T = TypeVar("T")


class TallyStore(Protocol):
    def answered_on(self, day: str) -> dict[str, int]: ...
    def save_answered(self, ext: str, day: str, count: int) -> None: ...
    def last_assigned(self) -> dict[str, tuple[str, ...]]: ...
    def save_assigned(self, distribution: str, ext: str) -> None: ...


class Tallies:
    def __init__(self, store: TallyStore | None = None) -> None:
        self.store = store
        self._day = ""
        self._answered: KeptView[str, int] = KeptView()
        self._last: dict[str, tuple[str, ...]] | None = None

    def answered_today(self, now: datetime) -> Mapping[str, int]:
        """Extension -> calls answered today: a read-only view a call may keep (it shares what it can)."""
        return self._today(now).snapshot()

    def count_answer(self, ext: str, now: datetime) -> None:
        counts = self._today(now)
        count = counts.get(ext, 0) + 1
        counts.set(ext, count)
        self._write(lambda store: store.save_answered(ext, self._day, count))

    def _today(self, now: datetime) -> KeptView[str, int]:
        day = now.date().isoformat()
        if day != self._day:
            self._day = day
            empty: dict[str, int] = {}
            self._answered = KeptView(self._read(lambda store: store.answered_on(day), empty))
        return self._answered

    def last_assigned(self) -> dict[str, tuple[str, ...]]:
        """Lead distribution -> its managers in the order they last got a lead (the most recent last)."""
        if self._last is None:
            none: dict[str, tuple[str, ...]] = {}
            self._last = self._read(lambda store: store.last_assigned(), none)
        return self._last

    def assigned(self, distribution: str, ext: str) -> None:
        last = self.last_assigned()
        last[distribution] = (*(e for e in last.get(distribution, ()) if e != ext), ext)
        self._write(lambda store: store.save_assigned(distribution, ext))

    def _read(self, read: Callable[[TallyStore], T], default: T) -> T:
        if self.store is None:
            return default
        try:
            return read(self.store)
        except (sqlite3.Error, OSError) as exc:
            log.error("tallies.failed", error=str(exc), note="distribution counts go on in memory")
            return default

    def _write(self, write: Callable[[TallyStore], None]) -> None:
        self._read(write, None)
