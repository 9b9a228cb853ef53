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
        self, leg: str, cmd: CrmCommand, linkedid: str, pbx_call: str, line: str, now: float
    ) -> None:
        await super()._upsert_call(leg, cmd, linkedid, pbx_call, line, now)
        await self._x("UPDATE calls SET pbx = ? WHERE crm_leg = ? AND pbx = ''", (self.pbx, leg))

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
