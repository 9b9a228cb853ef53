"""The journal's writes after ``append``: what happened to operations that were handed out.

Every change to a leg's operations or its call row ends with :meth:`JournalMarks._refresh_call`, which keeps the
leg's state and its head (what :meth:`~bridge.journal.reading.JournalReader.ready` reads) up to date: once per
transaction and leg, just before the commit (a read inside the transaction that looks at heads refreshes first; a
rollback has nothing to refresh).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from bridge.domain.commands import CrmHide
from bridge.journal import queries
from bridge.journal.codec import encode_command
from bridge.journal.db import Db, Params, SqliteDb, drive
from bridge.journal.reading import Clock, JournalReader
from bridge.journal.rows import NEEDS_CALL_ID

log = structlog.get_logger(__name__)

_AS_STR = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
"""What ``json.dumps(default=str)`` wrote as its ``str()``, orjson too."""
_OPEN_AND = f"state IN {queries.OPEN} AND"
"""Spelled out so that SQLite reads the open operations' index, not every operation ever journaled."""


RIDE_WITHIN = 0.2
"""Seconds a statement for the next commit waits for one before it gets its own (see ``durability.SYNC_PERIOD``)."""


class JournalError(Exception):
    """The journal file cannot be opened or used (the message says why and where)."""


@dataclass(frozen=True)
class DoneMark:
    """One operation's :meth:`JournalMarks.mark_done`, for :meth:`JournalMarks.mark_done_many`."""

    op_id: int
    result: Any = None
    call_id: str | None = None
    note: str = "delivered"


def stored_result(result: Any) -> str:
    """The JSON text of an answer as the journal keeps it: orjson's compact form (what Bitrix24 answered is JSON
    already; read back with ``json.loads``), ``json.dumps`` for what orjson refuses (an int beyond 64 bits, a key
    that is not a string). Anything else that is not JSON is stored as its ``str()``, as before; a NaN (only a
    non-standard answer has one) as null."""
    try:
        return orjson.dumps(result, default=str, option=_AS_STR).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(result, ensure_ascii=False, default=str)


DONE_IN_ONE = 100
"""SQLite: the most operations one statement of :meth:`JournalMarks.mark_done_many` marks (five parameters each at
most, well within the oldest SQLite's 999)."""


def _done_statement(items: Sequence[tuple[int, tuple[str, str]]], now: float) -> tuple[str, tuple[Any, ...]]:
    """SQLite: one UPDATE that marks these operations done, each with its (stored result, note), returning each one's
    id and leg: a column all of them give the same value is one parameter, else a ``CASE id`` (a batch's answer is
    mostly ``true`` and ``delivered``; a register's result is its own)."""
    ids = tuple(op_id for op_id, _ in items)
    sets: list[str] = []
    params: list[Any] = []
    for column in (0, 1):
        values = [answer[column] for _, answer in items]
        if len(set(values)) == 1:
            sets.append("?")
            params.append(values[0])
        else:
            sets.append("CASE id" + " WHEN ? THEN ?" * len(items) + " END")
            params += [v for op_id, answer in items for v in (op_id, answer[column])]
    sql = (f"UPDATE operations SET state = 'done', result = {sets[0]}, note = {sets[1]}, done_at = ?"
           f" WHERE id IN ({_marks(ids)}) RETURNING id, crm_leg")  # fmt: skip
    return sql, (*params, now, *ids)


def _marks(values: Collection[Any]) -> str:
    """One ``?`` per value, for an ``IN (...)`` list."""
    return ", ".join("?" * len(values))


class _Transaction:
    """:meth:`JournalMarks.transaction` (a class, not ``asynccontextmanager``: a delivery cycle opens several, and a
    generator-based one costs a generator and its frames each time)."""

    __slots__ = ("_joined", "_marks")

    def __init__(self, marks: JournalMarks) -> None:
        self._marks = marks
        self._joined = False

    async def __aenter__(self) -> None:
        self._joined = await self._marks._enter()

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        await self._marks._leave(self._joined, ok=kind is None)


class JournalMarks(JournalReader):
    def __init__(self, db: Db, clock: Clock, *, bridge: str = "") -> None:
        super().__init__(db, clock)
        self.bridge = bridge
        """The bridge that journals and sends through this (several may share one PostgreSQL journal)."""
        self._depth = 0  # nesting of transaction() in the task that holds it
        self._riders: list[tuple[str, Params]] = []
        """Statements for the next commit (:meth:`with_next_commit`)."""
        self._ride: asyncio.TimerHandle | None = None
        self._waiting_since: float | None = None
        """SQLite: no online register waiting to be sent was journaled before this time, as of the last
        :meth:`take_offline` (None: not known). A register journaled later is younger; one that waits again after a
        try (:meth:`mark_failed`, :meth:`requeue_sent`) makes it unknown. So :meth:`take_offline`, which the delivery
        asks before every cycle, reads nothing while none can be stale yet."""

    def transaction(self) -> _Transaction:
        """One atomic unit, committed when the outermost one ends; nested uses (in the same task) join it."""
        return _Transaction(self)

    async def _enter(self) -> bool:
        """Open a transaction, or join the calling task's own; True when joined."""
        if self._depth and self._db.in_transaction():
            self._depth += 1
            return True
        await self._db.begin()
        self._depth = 1
        self._serial += 1
        return False

    async def _leave(self, joined: bool, *, ok: bool) -> None:
        if joined:
            self._depth -= 1
            return
        riders = len(self._riders)
        if ok:
            try:
                await self._fresh()
                for sql, params in self._riders:
                    try:
                        await self._x(sql, params)
                    except Exception as exc:  # the database's own error: never the transaction's it rides on
                        log.error("journal.rider_failed", path=self._db.where, error=str(exc))
            except BaseException:
                self._depth = 0
                self._stale.clear()
                await self._db.rollback()
                raise
        self._depth = 0
        self._stale.clear()
        if ok:
            await self._db.commit()
            del self._riders[:riders]
        else:
            await self._db.rollback()

    def with_next_commit(self, sql: str, params: Params) -> None:
        """Write this statement in the next transaction that commits (its own, within :data:`RIDE_WITHIN` s, when no
        other comes; at once without an event loop): a write that may wait for a moment, such as a tally, costs no
        commit of its own. A crash of the process may lose it until then, as a power cut loses a moment's commits.
        One that fails is logged and dropped, never the transaction's undoing (SQLite: a failed statement leaves its
        transaction as it was; PostgreSQL's would not, so its journal gives this nothing)."""
        self._riders.append((sql, params))
        if self._depth and self._db.in_transaction():
            return  # the open transaction takes it
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            drive(self._ride_now())
            return
        if self._ride is None:
            self._ride = loop.call_later(RIDE_WITHIN, self._ride_due)

    def _ride_due(self) -> None:
        self._ride = None
        if self._riders and not self._depth:
            try:
                drive(self._ride_now())
            except Exception as exc:  # they wait for the next commit
                log.error("journal.rider_failed", path=self._db.where, error=str(exc))

    async def _ride_now(self) -> None:
        if self._riders:
            async with self.transaction():
                pass  # its commit writes them

    async def _refresh_call(self, leg: str, now: float) -> None:
        """Bring the leg's head and state up to date (see ``REFRESH_CALL``): inside a transaction once, just before
        its commit, however many of its changes touched the leg (a step's register and show: one refresh)."""
        if self._depth and self._db.in_transaction():
            self._stale[leg] = None
            self._stale_at = now
        else:
            await self._refresh_now([leg], now)

    async def _refresh_calls(self, legs: Collection[str], now: float) -> None:
        """:meth:`_refresh_call` for several legs."""
        if legs and self._depth and self._db.in_transaction():
            self._stale.update(dict.fromkeys(legs))
            self._stale_at = now
        elif legs:
            await self._refresh_now(list(dict.fromkeys(legs)), now)

    async def mark_sent(self, op_ids: list[int]) -> list[int]:
        """Claim these operations for sending now (one commit for all) and return those claimed: send only those.
        Await :meth:`~bridge.journal.store.AsyncJournal.sync` before sending them: only then is the mark on disk.

        On a shared (PostgreSQL) journal an operation that another sender holds or has claimed already is left out
        (``SELECT ... FOR UPDATE SKIP LOCKED``), so two senders (a leader and the one taking over) never send one
        operation twice. SQLite has one sender (the journal's file lock): every id is claimed."""
        if self._db.dialect == "postgres":
            if op_ids:
                claimed = {row[0] for row in await self._all(queries.CLAIM, (list(op_ids), self.bridge))}
                op_ids = [op_id for op_id in op_ids if op_id in claimed]
            return op_ids
        if not op_ids:
            return op_ids
        sql, params = queries.CLAIM_SQLITE.format(ids=_marks(op_ids)), (self.bridge, *op_ids)
        if self._depth and self._db.in_transaction():  # the caller's transaction takes it
            await self._x(sql, params)
        else:  # one statement for the whole batch, committed by itself: no BEGIN and COMMIT (see CLAIM_SQLITE)
            assert isinstance(self._db, SqliteDb)
            self._statements += 1
            await self._db.write(sql, params)
        return op_ids

    async def mark_done(
        self, op_id: int, result: Any = None, *, call_id: str | None = None, note: str = "delivered"
    ) -> None:
        """Bitrix24 confirmed it (or it is settled otherwise: ``note`` says how). ``call_id`` is stored atomically."""
        now = self._clock()
        async with self.transaction():
            # RETURNING (SQLite 3.35): one statement, not a look-up of the leg first
            marked = await self._all(
                "UPDATE operations SET state = 'done', result = ?, note = ?, done_at = ? WHERE id = ?"
                " RETURNING crm_leg",
                (stored_result(result), note, now, op_id),
            )
            if not marked:
                raise JournalError(f"no operation with id {op_id}")
            leg: str | None = marked[0][0]
            if leg is not None:
                if call_id:
                    await self._x("UPDATE calls SET call_id = ? WHERE crm_leg = ?", (call_id, leg))
                await self._refresh_call(leg, now)

    async def mark_done_many(self, marks: Sequence[DoneMark]) -> None:
        """Several :meth:`mark_done` in one transaction, the legs' heads refreshed once each (one statement for all
        of them). On PostgreSQL the operations and the CALL_IDs are one statement each too: a batch's answer costs a
        few round trips, not three per operation. SQLite: the operations in one statement too (see
        :func:`_done_statement`), the CALL_IDs one each."""
        if not marks:
            return
        now = self._clock()
        results = [stored_result(m.result) for m in marks]
        async with self.transaction():
            if self._db.dialect == "postgres":
                rows = await self._all(
                    queries.DONE_MANY, (now, [m.op_id for m in marks], results, [m.note for m in marks])
                )
            else:  # one statement per DONE_IN_ONE operations (UPDATE ... FROM (VALUES ...) cost more a row)
                items = [(m.op_id, (result, m.note)) for m, result in zip(marks, results, strict=True)]
                rows = []
                for start in range(0, len(items), DONE_IN_ONE):
                    rows += await self._all(*_done_statement(items[start : start + DONE_IN_ONE], now))
            leg_of: dict[int, str | None] = {row[0]: row[1] for row in rows}
            missing = [m.op_id for m in marks if m.op_id not in leg_of]
            if missing:
                raise JournalError(f"no operation with id {missing[0]}")
            call_ids = {leg: m.call_id for m in marks if m.call_id and (leg := leg_of[m.op_id]) is not None}
            if call_ids and self._db.dialect == "postgres":
                await self._x(queries.CALL_IDS_MANY, (list(call_ids), list(call_ids.values())))
            else:
                for leg, call_id in call_ids.items():
                    await self._x("UPDATE calls SET call_id = ? WHERE crm_leg = ?", (call_id, leg))
            await self._refresh_calls(list(dict.fromkeys(leg for leg in leg_of.values() if leg is not None)), now)

    async def mark_failed(
        self, op_id: int, error: str, permanent: bool, retry_at: float | None = None, *, arrived: bool = True
    ) -> list[tuple[int, str]]:
        """A transient failure goes back to ``pending`` until ``retry_at``; a permanent one parks the operation and
        every later one of its leg that can no longer succeed (returned as ``(id, kind)``).

        ``arrived=False``: the try provably never reached Bitrix24 (the connection was refused, the portal's limit
        turned the request away), so it does not count as a possible delivery (``attempts`` goes back down; the
        back-off still grows with ``tries``).
        """
        now = self._clock()
        cascaded: list[tuple[int, str]] = []
        if not permanent:
            self._waiting_since = None  # a register waiting again may be old already
        async with self.transaction():
            leg = await self._leg_of(op_id)
            if not permanent:
                await self._x(
                    "UPDATE operations SET state = 'pending', last_error = ?, next_attempt_at = ?,"
                    " attempts = MAX(0, attempts - ?) WHERE id = ?",
                    (error, now if retry_at is None else retry_at, 0 if arrived else 1, op_id),
                )
            else:
                cascaded = await self._fail(leg, op_id, error, now)
            if leg is not None:
                await self._refresh_call(leg, now)
        return cascaded

    async def _fail(self, leg: str | None, op_id: int, error: str, now: float) -> list[tuple[int, str]]:
        await self._x(
            "UPDATE operations SET state = 'failed', last_error = ?, note = 'failed', done_at = ? WHERE id = ?",
            (error, now, op_id),
        )
        cascaded: list[tuple[int, str]] = []
        if leg is None:
            return cascaded
        row = await self._one("SELECT kind, seq FROM operations WHERE id = ?", (op_id,))
        blocked = {"register": NEEDS_CALL_ID, "finish": {"attach_record"}}.get(row["kind"], set())
        for later in await self._all(queries.LATER_OPEN_OPS, (leg, row["seq"])):
            if later["kind"] in blocked:
                await self._x(
                    "UPDATE operations SET state = 'failed', last_error = ?, note = 'failed', done_at = ? WHERE id = ?",
                    (f"{row['kind']} failed: {error}", now, later["id"]),
                )
                cascaded.append((later["id"], later["kind"]))
        return cascaded

    async def set_call_id(self, crm_leg: str, call_id: str) -> None:
        now = self._clock()
        async with self.transaction():
            await self._x("UPDATE calls SET call_id = ? WHERE crm_leg = ?", (call_id, crm_leg))
            await self._refresh_call(crm_leg, now)

    async def take_offline(self, register_timeout: float) -> list[str]:
        """Online legs whose ``register`` is still unsent ``register_timeout`` s after it was journaled go offline
        (see :meth:`go_offline`), all in one transaction of a few statements. Returns those legs."""
        now = self._clock()
        stale_before = now - register_timeout
        if self._waiting_since is not None and stale_before < self._waiting_since:
            return []
        await self._fresh()
        waiting = await self._all(queries.WAITING_REGISTERS)
        legs = [leg for leg, created in waiting if created <= stale_before]
        if legs:
            async with self.transaction():
                for start in range(0, len(legs), queries.IN_LIST):
                    await self._go_offline(legs[start : start + queries.IN_LIST])
        # only once the stale ones are offline for good; a shared journal has other writers: it asks every time
        if self._db.dialect == "sqlite" and not self._db.in_transaction():
            self._waiting_since = min((created for _, created in waiting if created > stale_before), default=now)
        return legs

    async def go_offline(self, crm_leg: str) -> None:
        """Mirror this leg without cards: pending show/hide are settled as skipped, and so are later ones.

        A ``show`` that may have reached Bitrix24 (a register and show sent just before a crash, their answers
        lost) left a card open that nothing would close (``finish`` hides only its own user's card, and a
        ``hide`` after ``finish`` does nothing): one ``hide`` for those users goes ahead of the leg's ``finish``.
        """
        await self._go_offline([crm_leg])

    async def _go_offline(self, legs: list[str]) -> None:
        """:meth:`go_offline` for several legs: one statement for each step whatever their number (a hide goes
        ahead of the finish, leg by leg, only where a card may be showing)."""
        now = self._clock()
        marks = _marks(legs)
        async with self.transaction():
            await self._x(f"UPDATE calls SET mode = 'offline', updated_at = ? WHERE crm_leg IN ({marks})", (now, *legs))
            shown: dict[str, dict[int, None]] = {}
            for leg, command in await self._all(queries.POSSIBLY_SHOWN.format(legs=marks), tuple(legs)):
                ids = (int(user) for user in json.loads(command).get("user_ids", ()))
                shown.setdefault(leg, {}).update(dict.fromkeys(ids))
            await self._x(queries.SKIP_PENDING_CARDS.format(legs=marks), ("skipped: the call is offline", now, *legs))
            for leg, users in shown.items():
                if users:
                    await self._hide_before_finish(leg, tuple(users), now)
            await self._refresh_calls(legs, now)

    async def _hide_before_finish(self, crm_leg: str, users: tuple[int, ...], now: float) -> None:
        (last,) = await self._one("SELECT COALESCE(MAX(seq), 0) FROM operations WHERE crm_leg = ?", (crm_leg,))
        finish = await self._one(
            "SELECT seq FROM operations WHERE crm_leg = ? AND kind = 'finish' ORDER BY seq LIMIT 1", (crm_leg,)
        )
        seq = last + 1
        if finish is not None:  # make room: the finish and what follows it move one place on (unique seq)
            seq = finish[0]
            await self._x("UPDATE operations SET seq = -seq - 1 WHERE crm_leg = ? AND seq >= ?", (crm_leg, seq))
            await self._x("UPDATE operations SET seq = -seq WHERE crm_leg = ? AND seq < 0", (crm_leg,))
        command = encode_command(CrmHide(crm_leg, users))
        await self._x(
            "INSERT INTO operations (crm_leg, seq, kind, command, state, next_attempt_at, created_at, bridge)"
            " VALUES (?, ?, 'hide', ?, 'pending', ?, ?, ?)",
            (crm_leg, seq, command, now, now, self.bridge),
        )

    async def requeue_sent(self, op_ids: Collection[int] | None = None) -> int:
        """After a restart: operations left ``sent`` may or may not have arrived; make them ``pending`` again
        (their ``attempts`` stays > 0, which tells the sender to check first). ``op_ids``: only these (one
        delivery cycle's, after it failed). Returns how many."""
        only = "" if op_ids is None else f" AND id IN ({', '.join(str(int(i)) for i in op_ids) or 'NULL'})"
        self._waiting_since = None  # a register waiting again may be old already
        async with self.transaction():
            cur = await self._x(f"UPDATE operations SET state = 'pending', next_attempt_at = ? WHERE {_OPEN_AND}"
                                f" state = 'sent'{only}", (self._clock(),))  # fmt: skip
            if cur.rowcount:
                await self._x(queries.REFRESH_HEADS)
        return cur.rowcount

    async def retry_now(self) -> int:
        """Bitrix24 answers again: operations waiting out a back-off are due now (their attempts stay counted, so
        a doubtful one is still checked first). Returns how many."""
        now = self._clock()
        async with self.transaction():
            cur = await self._x(f"UPDATE operations SET next_attempt_at = ? WHERE {_OPEN_AND} state = 'pending'"
                                " AND next_attempt_at > ?", (now, now))  # fmt: skip
            if cur.rowcount:
                await self._x(queries.REFRESH_HEADS)
        return cur.rowcount

    async def _park_damaged(self, op_id: int, reason: str) -> None:
        await self.mark_failed(op_id, reason, permanent=True)

    async def _leg_of(self, op_id: int) -> str | None:
        row = await self._one("SELECT crm_leg FROM operations WHERE id = ?", (op_id,))
        if row is None:
            raise JournalError(f"no operation with id {op_id}")
        leg: str | None = row[0]
        return leg
