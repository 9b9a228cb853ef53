"""The journal's queries: what may be sent now, and what the operator and the metrics see.

:class:`JournalReader` holds the database (:mod:`bridge.journal.db`); :class:`~bridge.journal.store.AsyncJournal`
adds the writes. Every method is a coroutine (see :mod:`bridge.journal.db` for why that costs SQLite nothing).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog

from bridge.domain.commands import CrmCommand
from bridge.journal import queries
from bridge.journal.db import Db, Params, Rows
from bridge.journal.rows import CARD_KINDS, NEEDS_CALL_ID, CallRow, OpRow, PendingOp

log = structlog.get_logger(__name__)

Clock = Callable[[], float]
RIDERS = CARD_KINDS | {"finish"}
"""What may ride on a register in the same batch (named as ``$result[<register>][CALL_ID]``), or on a card move."""
CHAIN_HEADS = CARD_KINDS | {"register"}
"""Heads whose ready followers (:data:`RIDERS`) come with them."""
LIVE_SHARE = 2 / 3
"""Of what :meth:`JournalReader.ready` returns, the most that live legs may take ahead of older work."""
APPENDED_MEMORY = 4096
"""Commands kept as appended (the oldest is forgotten first; a forgotten one is decoded from its row)."""


def _due_order(row: Any) -> tuple[float, int]:
    return row["due"], row["id"]


class JournalReader:
    def __init__(self, db: Db, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._appended: dict[int, tuple[str, CrmCommand]] = {}
        """Operations this process journaled, as appended: :meth:`ready` need not decode them again."""
        self._stale: dict[str, None] = {}
        """Legs whose head and state the open transaction changed: refreshed once each, before its commit (see
        :meth:`~bridge.journal.marks.JournalMarks._refresh_call`), or before a read in it that looks at them."""
        self._stale_at = 0.0
        self._statements = 0
        """Statements run so far (an append may trust what the one before it read only if none ran since)."""
        self._serial = 0
        """Transactions begun so far."""
        self._ended: dict[str, None] = {}
        """Legs whose end (``finish``) this process journaled, the latest :data:`APPENDED_MEMORY`: their refresh
        goes straight to ``REFRESH_CALL`` (only a hint: either refresh is right for any leg)."""
        self._known_call: tuple[int, int, tuple[str, str, str, str], Any] | None = None
        """What the last append learned of its call row, with when (transaction, statements) and under which names:
        a card move appended right after it in the same transaction needs no upsert of its own."""

    def _remember(self, op_id: int, text: str, cmd: CrmCommand) -> None:
        if len(self._appended) >= APPENDED_MEMORY:
            del self._appended[next(iter(self._appended))]
        self._appended[op_id] = (text, cmd)

    async def _x(self, sql: str, params: Params = ()) -> Rows:
        self._statements += 1
        return await self._db.execute(sql, params)

    async def _one(self, sql: str, params: Params = ()) -> Any:
        self._statements += 1
        return (await self._db.execute(sql, params)).fetchone()

    async def _all(self, sql: str, params: Params = ()) -> list[Any]:
        self._statements += 1
        return (await self._db.execute(sql, params)).fetchall()

    def _ending(self, leg: str) -> None:
        """The leg's end was journaled (see ``_ended``)."""
        if len(self._ended) >= APPENDED_MEMORY:
            del self._ended[next(iter(self._ended))]
        self._ended[leg] = None

    async def _refresh_now(self, legs: list[str], now: float) -> None:
        """The legs' heads and states (distinct legs): those still open by their heads alone, the others whole."""
        if len(legs) == 1:
            params = {"leg": legs[0], "now": now}
            if legs[0] in self._ended or not (await self._x(queries.REFRESH_OPEN_CALL, params)).rowcount:
                await self._x(queries.REFRESH_CALL, params)
            return
        for start in range(0, len(legs), queries.IN_LIST):
            part = legs[start : start + queries.IN_LIST]
            still_open, whole = queries.refresh_calls(len(part))
            if (await self._x(still_open, (now, *part))).rowcount < len(part):
                await self._x(whole, (now, *part))

    async def _fresh(self) -> None:
        """Run the refreshes the open transaction put off (before its commit, or before it reads the heads)."""
        if self._stale and self._db.in_transaction():  # (a shared journal: only the task whose transaction it is)
            legs = list(self._stale)
            self._stale.clear()
            await self._refresh_now(legs, self._stale_at)

    async def _park_damaged(self, op_id: int, reason: str) -> None:
        """A stored command that cannot be read: the writer parks it (it must never be sent)."""
        raise NotImplementedError

    async def ready(self, limit: int = 50, *, chain_limit: int = 50) -> list[PendingOp]:
        """Operations that may be sent now, at most ``limit``: live legs' first, then the longest due.

        Per leg only its head (the first operation not yet done or failed) and only if it is ``pending`` and due;
        show/hide/finish/attachRecord only once a CALL_ID is known; an offline leg only once its end is journaled.
        When the head is a ``register``, the pending operations right behind it (up to an ``attach_record``) come
        with it (at most ``chain_limit`` in all), so that one batch can carry them with ``$result[...]``
        references; so they do behind a card move (a walk's hide and show, then maybe the finish), in order in one
        batch: a card move that fails while a later one went is skipped, as in a register's chain. Each leg keeps
        its head and when it is due in its ``calls`` row (see :data:`~bridge.journal.queries.HEAD_DUE`), so this
        reads about ``limit`` rows however long the backlog is.
        """
        now = self._clock()
        picked: list[PendingOp] = []
        await self._fresh()
        heads = await self._due_heads(now, limit)
        behind = await self._open_behind([head for head in heads if head["kind"] in CHAIN_HEADS])
        for head in heads:
            if len(picked) >= limit:
                break
            chain, longest = [head], min(limit, chain_limit)
            for row in behind.get(head["id"], ()):
                if len(chain) >= longest or row["state"] != "pending" or row["kind"] not in RIDERS:
                    break
                chain.append(row)
            if len(picked) + len(chain) > limit:
                continue  # a shorter chain further on may still fit
            picked += [p for p in [await self._pending(row, head) for row in chain] if p is not None]
        return picked

    async def _open_behind(self, heads: list[Any]) -> dict[int, list[Any]]:
        """Per head (by its id) the open operations of its leg behind it, in order: one statement for all heads."""
        legs = {head["crm_leg"]: head for head in heads}
        behind: dict[int, list[Any]] = {head["id"]: [] for head in heads}
        if not legs:
            return behind
        marks = ", ".join("?" * len(legs))
        for row in await self._all(queries.OPEN_FOLLOWERS.format(legs=marks), tuple(legs)):
            head = legs[row["crm_leg"]]
            if row["seq"] > head["seq"]:
                behind[head["id"]].append(row)
        return behind

    async def _due_heads(self, now: float, limit: int) -> list[Any]:
        """Heads that are due: first those of live legs (up to ``LIVE_SHARE`` of ``limit``), then every leg's and
        the operations of no leg, merged by when they became due. After an outage the live calls' cards thus
        appear (and their ``register`` beats ``register_timeout``) while the offline backlog drains behind them,
        yet the backlog always keeps a share."""
        parts: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
        for row in await self._all(queries.DUE_HEADS, {"now": now, "limit": limit}):
            parts[row["part"] - 1].append(row)
        online, offline, loose = (sorted(part, key=_due_order) for part in parts)
        share = max(1, int(limit * LIVE_SHARE))
        live, later = online[:share], online[share:]  # every leg's first `limit`: the live and offline ones merged
        merged = heapq.merge(later, offline, loose, key=_due_order)
        return [row for row in (*live, *merged) if row["state"] == "pending" and self._may_go(row)][:limit]

    @staticmethod
    def _may_go(head: Any) -> bool:
        if head["crm_leg"] is None:
            return True
        if head["kind"] == "register":
            return bool(head["mode"] == "online" or head["ended_at"] is not None)
        return head["kind"] not in NEEDS_CALL_ID or head["call_id"] is not None

    async def _pending(self, row: Any, head: Any) -> PendingOp | None:
        op = OpRow.from_row(row)
        known = self._appended.get(op.id)
        try:  # as appended, if the stored text is still what was appended (else it is read, and checked)
            command = known[1] if known is not None and known[0] == op.command_json else op.command
        except ValueError as exc:
            log.error("journal.bad_row", op=op.id, crm_leg=op.crm_leg, error=str(exc))
            await self._park_damaged(op.id, f"stored command unreadable: {exc}")
            return None
        return PendingOp(
            id=op.id, crm_leg=op.crm_leg, seq=op.seq, kind=op.kind, command=command, attempts=op.attempts,
            created_at=op.created_at, call_id=head["call_id"], mode=head["mode"] or "online",
            call_state=head["call_state"] or "", tries=op.tries, pbx_call=head["pbx_call"] or "",
            linkedid=head["linkedid"] or "", line=head["line"] or "",
        )  # fmt: skip

    async def next_due(self, register_timeout: float) -> float | None:
        """The earliest time something may become ready without a new append (a retry or an offline deadline)."""
        await self._fresh()
        live, offline, loose, oldest = await self._one(queries.NEXT_DUE)
        times = [live, offline, loose, None if oldest is None else oldest + register_timeout]
        return min((t for t in times if t is not None), default=None)

    async def calls(
        self, status: str | None = None, since: datetime | float | None = None, crm_leg: str | None = None
    ) -> list[CallRow]:
        """Calls, oldest first. ``status``: ``pending`` (open or ended), ``open``, ``ended``, ``done``, ``failed``."""
        await self._fresh()
        if crm_leg is not None and status is None and since is None:  # one row at most: nothing to order
            return [CallRow.from_row(r) for r in await self._all("SELECT * FROM calls WHERE crm_leg = ?", (crm_leg,))]
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            states = {"pending": ("open", "ended")}.get(status, (status,))
            where.append(f"state IN ({', '.join('?' * len(states))})")
            params += list(states)
        if since is not None:
            where.append("started_ts >= ?")
            params.append(since.timestamp() if isinstance(since, datetime) else since)
        if crm_leg is not None:
            where.append("crm_leg = ?")
            params.append(crm_leg)
        sql = "SELECT * FROM calls" + (" WHERE " + " AND ".join(where) if where else "")
        rows = await self._all(sql + " ORDER BY COALESCE(started_ts, created_at), crm_leg", tuple(params))
        return [CallRow.from_row(r) for r in rows]

    async def has_call(self, crm_leg: str) -> bool:
        """The journal holds a call row for this leg (read from the leg's index alone: no row is built)."""
        return await self._one("SELECT 1 FROM calls WHERE crm_leg = ?", (crm_leg,)) is not None

    async def calls_of(self, legs: list[str]) -> dict[str, CallRow]:
        """These legs' call rows, by leg (a statement per :data:`~bridge.journal.queries.IN_LIST` legs)."""
        await self._fresh()
        found: dict[str, CallRow] = {}
        for start in range(0, len(legs), queries.IN_LIST):
            part = legs[start : start + queries.IN_LIST]
            sql = f"SELECT * FROM calls WHERE crm_leg IN ({', '.join('?' * len(part))})"
            found.update((row.crm_leg, row) for row in map(CallRow.from_row, await self._all(sql, tuple(part))))
        return found

    async def legs_since(self, created: float) -> set[str]:
        """The legs journaled since ``created`` (unix seconds), whatever their state."""
        return {row[0] for row in await self._all("SELECT crm_leg FROM calls WHERE created_at >= ?", (created,))}

    async def operations(self, crm_leg: str | None) -> list[OpRow]:
        """A leg's operations in order (``None``: the operations that belong to no call)."""
        rows = await self._all("SELECT * FROM operations WHERE crm_leg IS ? ORDER BY seq, id", (crm_leg,))
        return [OpRow.from_row(r) for r in rows]

    async def depth(self) -> int:
        """Operations not yet done or failed."""
        (count,) = await self._one("SELECT COUNT(*) FROM operations WHERE state IN ('pending', 'sent')")
        return int(count)

    async def oldest_pending_age(self, now: float) -> float:
        """Seconds since the oldest operation not yet done or failed was journaled (0 when there is none)."""
        (oldest,) = await self._one("SELECT MIN(created_at) FROM operations WHERE state IN ('pending', 'sent')")
        return 0.0 if oldest is None else max(0.0, now - oldest)
