"""A shared (PostgreSQL) journal as the bridges of one PBX see it: every call is marked with the PBX it runs on
(``[cluster] pbx_id``), and recovery reads only its own PBX's calls, never another bridge's (whose channels this
PBX does not have: it would finish them as gone). The bridges of a standby pair share a ``pbx_id``, so the one
that takes the PBX over adopts the calls the other journaled."""

from __future__ import annotations

from typing import Any

from bridge.domain.commands import CrmCommand
from bridge.journal.rows import CallRow, OpRow
from bridge.journal.store import AsyncJournal


class PbxJournal(AsyncJournal):
    """The shared journal of a bridge whose PBX is :attr:`pbx`; each call it journals first is marked with it."""

    pbx = ""

    async def _upsert_call(
        self, leg: str, cmd: CrmCommand, kind: str, linkedid: str, pbx_call: str, line: str, now: float
    ) -> Any:
        call = await super()._upsert_call(leg, cmd, kind, linkedid, pbx_call, line, now)
        await self._x("UPDATE calls SET pbx = ? WHERE crm_leg = ? AND pbx = ''", (self.pbx, leg))
        return call

    async def own(self, legs: list[str]) -> set[str]:
        """Those of ``legs`` that are calls of this bridge's PBX."""
        if not legs:
            return set()
        rows = await self._x("SELECT crm_leg FROM calls WHERE pbx = ? AND crm_leg = ANY(?)", (self.pbx, legs))
        return {row[0] for row in rows.fetchall()}

    async def claim(self, event: str) -> tuple[str, str]:
        """Take ``event`` (a portal event every bridge receives) for this bridge unless another took it first;
        returns who has it, (bridge id, pbx id)."""
        async with self.transaction():
            await self._x(
                "INSERT OR IGNORE INTO claims (event, bridge, pbx, claimed_at) VALUES (?, ?, ?, ?)",
                (event, self.bridge, self.pbx, self._clock()),
            )
            row = (await self._x("SELECT bridge, pbx FROM claims WHERE event = ?", (event,))).fetchone()
        return str(row[0]), str(row[1])

    async def system_name_clashes(self, system_name: str) -> list[tuple[str, str, str]]:
        """Record that this bridge's PBX reports ``system_name`` (asterisk.conf ``systemname``; "" none), and list
        the live bridges of other PBXs on this journal whose channel ids could collide with its own: (bridge, pbx,
        their system name) of those reporting the same name, or none, or any when this one has none. A bridge is
        live while its leadership session (``b24-bridge <bridge id>``) is connected."""
        async with self.transaction():
            await self._x(
                "INSERT INTO pbx_systems (bridge, pbx, system_name, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT (bridge)"
                " DO UPDATE SET pbx = excluded.pbx, system_name = excluded.system_name, seen_at = excluded.seen_at",
                (self.bridge, self.pbx, system_name, self._clock()),
            )
        rows = await self._x(
            "SELECT bridge, pbx, system_name FROM pbx_systems s WHERE bridge <> ? AND pbx <> ?"
            " AND (system_name = ? OR system_name = '' OR ? = '') AND EXISTS (SELECT 1 FROM pg_stat_activity a"
            " WHERE a.application_name = LEFT('b24-bridge ' || s.bridge, 63)) ORDER BY bridge",
            (self.bridge, self.pbx, system_name, system_name),
        )
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows.fetchall()]


class OwnCalls:
    """What recovery reads and writes (:class:`bridge.recovery.Journalish`): the calls of this PBX only."""

    def __init__(self, journal: PbxJournal) -> None:
        self.journal = journal

    async def calls(self, status: str | None = None, since: Any = None, crm_leg: str | None = None) -> list[CallRow]:
        rows = await self.journal.calls(status, since, crm_leg)
        own = await self.journal.own([row.crm_leg for row in rows])
        return [row for row in rows if row.crm_leg in own]

    async def legs_since(self, created: float) -> set[str]:
        rows = await self.journal._x(
            "SELECT crm_leg FROM calls WHERE created_at >= ? AND pbx = ?", (created, self.journal.pbx)
        )
        return {row[0] for row in rows.fetchall()}

    async def operations(self, crm_leg: str | None) -> list[OpRow]:
        return await self.journal.operations(crm_leg)

    async def append(self, cmd: Any, *, linkedid: str = "", pbx_call: str = "", line: str = "") -> int:
        return await self.journal.append(cmd, linkedid=linkedid, pbx_call=pbx_call, line=line)
