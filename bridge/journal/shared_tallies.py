"""The distribution tallies (:mod:`bridge.journal.tallies`) on a journal that awaits (PostgreSQL): read once at the
start, then kept in memory and written through the ordered write-behind queue (a call's step cannot wait)."""

from __future__ import annotations

from bridge.journal.behind import WriteBehind
from bridge.journal.store import AsyncJournal
from bridge.journal.tallies import ANSWERED, LEAD

UPSERT = (
    "INSERT INTO tallies (pbx, scope, member, day, count, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (pbx, scope, member) DO UPDATE SET day = excluded.day, count = excluded.count,"
    " updated_at = excluded.updated_at"
)


class SharedTallies:
    """A :class:`bridge.dispatch.tallies.TallyStore` over a PostgreSQL journal; :meth:`load` before the first call.
    The counts are those of one PBX (``pbx``, its ``[cluster] pbx_id``): the extensions of two offices may share
    numbers, never their counts; the bridges of a standby pair share a PBX and so its counts."""

    def __init__(self, journal: AsyncJournal, behind: WriteBehind, pbx: str = "") -> None:
        self.journal = journal
        self.behind = behind
        self.pbx = pbx
        self._answered: dict[str, dict[str, int]] = {}
        self._leads: dict[str, dict[str, int]] = {}
        self._last: dict[str, tuple[str, ...]] = {}

    async def load(self) -> None:
        rows = (
            await self.journal._x(
                "SELECT scope, member, day, count FROM tallies WHERE pbx = ? ORDER BY updated_at", (self.pbx,)
            )
        ).fetchall()
        for row in rows:
            if row["scope"] == ANSWERED:
                self._answered.setdefault(row["day"], {})[row["member"]] = int(row["count"])
            elif row["scope"].startswith(LEAD):
                name = row["scope"][len(LEAD) :]
                self._leads.setdefault(name, {})[row["member"]] = int(row["count"])
                self._last[name] = (*self._last.get(name, ()), row["member"])

    def answered_on(self, day: str) -> dict[str, int]:
        return dict(self._answered.get(day, {}))

    def save_answered(self, ext: str, day: str, count: int) -> None:
        self._answered.setdefault(day, {})[ext] = count
        self._write(ANSWERED, ext, day, count)

    def last_assigned(self) -> dict[str, tuple[str, ...]]:
        return dict(self._last)

    def save_assigned(self, distribution: str, ext: str) -> None:
        counts = self._leads.setdefault(distribution, {})
        counts[ext] = counts.get(ext, 0) + 1
        self._last[distribution] = (*(e for e in self._last.get(distribution, ()) if e != ext), ext)
        self._write(LEAD + distribution, ext, "", counts[ext])

    def _write(self, scope: str, member: str, day: str, count: int) -> None:
        async def write() -> None:
            async with self.journal.transaction():
                await self.journal._x(UPSERT, (self.pbx, scope, member, day, count, self.journal._clock()))

        self.behind.later(write)
