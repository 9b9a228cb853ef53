"""The outbox: every Bitrix24 operation is committed here before it is sent and marked when Bitrix24 answers.

What it promises:

* ``kill -9`` (or any crash of the process) loses nothing: ``append``/``mark_*`` return once SQLite has written
  the commit into the WAL file, and the operating system keeps what was written when the process dies.
* A power cut (or a kernel crash) loses at most the commits of its last moments: while a commit is not yet on
  disk, an fsync runs by itself within :data:`~bridge.journal.durability.SYNC_PERIOD` (0.2 s), so the loss is
  at most that plus one fsync's worth of appends and marks. The database is never corrupted (WAL with
  ``synchronous=NORMAL`` stays consistent; SQLite still fsyncs around every checkpoint).
* Nothing goes out twice because of such a loss, although the sender does not wait for the disk: the sender
  takes the journal over at its start (:meth:`Journal.take_over`), which records the machine's boot. If the last
  sender never closed the journal and the machine has restarted since, its last ``sent`` and ``done`` marks may
  be gone, so every register and finish not yet done is made doubtful (``attempts`` > 0): it is checked against
  the statistics before it goes out again, and a ``finish`` that did reach Bitrix24 is found there, not resent.
  After a crash of the process alone nothing was lost, and only what was in flight is doubtful. A tool that
  sends without taking the journal over (``b24-bridge replay``) awaits :meth:`Journal.sync` after marking
  operations ``sent`` and before sending them (it checks the statistics first anyway).

How: SQLite in WAL mode with ``synchronous=NORMAL`` (a commit costs a ``write``, no fsync) and the fsyncs and
checkpoints in a worker thread (:mod:`bridge.journal.durability`), so neither the event loop nor a request ever
waits for the disk. Without a running event loop (the CLI, tests) every commit is fsynced before it returns.

Order rules (see :meth:`Journal.ready`): operations of one leg go strictly in ``seq`` order; anything that names
the CALL_ID waits for ``register``; an offline leg's ``register`` waits for its ``finish`` to be journaled.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.domain.commands import CallType, CrmAdopt, CrmAttachRecord, CrmCommand, CrmFinish, CrmRegister
from bridge.journal import queries
from bridge.journal.codec import encode_command, kind_of
from bridge.journal.db import Db, SqliteDb
from bridge.journal.durability import WalSync, boot_id
from bridge.journal.marks import JournalError, JournalMarks
from bridge.journal.reading import Clock
from bridge.journal.rows import CARD_KINDS, NEEDS_CALL_ID
from bridge.journal.schema import SchemaError, migrate_sqlite
from bridge.logs import HotLogger

log = HotLogger(__name__)


class AsyncJournal(JournalMarks):
    """The outbox (the async interface every backend gives); the queries (``ready``, ``calls``, ...) come from the
    reader, the marks from :mod:`.marks`. ``bridge`` names the bridge that journals and sends through it (kept with
    every operation: several bridges may share one PostgreSQL journal)."""

    def __init__(self, db: Db, clock: Clock, *, bridge: str = "") -> None:
        super().__init__(db, clock, bridge=bridge)
        self._sender = False

    @property
    def where(self) -> str:
        """The database, for messages: a path, or a url without its password."""
        return self._db.where

    @property
    def dialect(self) -> str:
        return self._db.dialect

    @classmethod
    def open_sqlite(cls, path: Path | str, *, clock: Clock = time.time, bridge: str = "") -> AsyncJournal:
        """Open (creating if needed) the SQLite journal at ``path`` and bring its schema up to date."""
        path = Path(path)
        try:
            # room for every statement prepared once (mark_sent's IN lists come in many lengths)
            conn = sqlite3.connect(path, isolation_level=None, timeout=10.0, cached_statements=512)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal {path}: {exc}") from None
        conn.row_factory = sqlite3.Row
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode == "wal":
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run in the worker thread
            else:  # no WAL to fsync on the side: every commit is durable by itself, on the caller's thread
                conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            version = migrate_sqlite(conn)
        except (sqlite3.Error, SchemaError) as exc:
            conn.close()
            raise JournalError(f"cannot use the journal {path}: {exc}") from None
        if mode != "wal":
            log.warning("journal.not_wal", path=str(path), mode=mode)
        log.debug("journal.opened", path=str(path), schema=version)
        return cls(SqliteDb(conn, WalSync(path)), clock, bridge=bridge)

    @classmethod
    async def open_postgres(
        cls, url: str, *, password: str | None = None, clock: Clock = time.time, bridge: str = ""
    ) -> AsyncJournal:
        """Connect to the PostgreSQL journal at ``url`` (``password``: when the url has none) and bring its schema
        up to date. Raises :class:`JournalError` naming the database (never its password)."""
        import psycopg

        from bridge.journal.pg import PgDb, redact

        try:
            db = await PgDb.connect(url, password=password)
        except (psycopg.Error, SchemaError, OSError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if password:
                reason = reason.replace(password, "***")
            raise JournalError(f"cannot use the journal {redact(url)}: {reason}") from None
        return cls(db, clock, bridge=bridge)

    async def close(self) -> None:
        """Close; a sender that took the journal over leaves it clean (see the module docstring)."""
        if self._ride is not None:
            self._ride.cancel()
            self._ride = None
        if self._sender or self._riders:
            try:
                async with self.transaction():  # with what waited for a commit
                    if self._sender:
                        await self._x("DELETE FROM meta WHERE key = ?", (self._sender_key,))
            except Exception as exc:  # the database's own error type: sqlite3's or psycopg's
                log.error("journal.close_failed", path=self.where, error=str(exc))
        await self._db.close()

    @property
    def _sender_key(self) -> str:
        return "sender_boot" if self.dialect == "sqlite" else f"sender:{self.bridge}"

    async def take_over(self) -> tuple[int, int]:
        """Become the journal's sender (the delivery, once, before it sends anything). What a dead sender left
        ``sent`` goes back to the queue, doubtful (:meth:`requeue_sent`): on a shared PostgreSQL journal that is
        what the previous delivery leader, of any bridge, had in flight. On SQLite, if the last sender never closed
        the journal and the machine has restarted since, every register and finish not yet done becomes doubtful
        too (PostgreSQL's commits are durable when they return: nothing to doubt there). The record of this start
        is on disk when this returns. Returns (requeued, made doubtful).

        Only one sender may run at a time (SQLite: the journal's file lock; a shared journal: its delivery leader):
        what a sender still alive has in flight would be made doubtful too, and checked and perhaps sent again."""
        requeued = await self.requeue_sent()
        boot = boot_id()
        doubted = 0
        async with self.transaction():
            row = await self._one("SELECT value FROM meta WHERE key = ?", (self._sender_key,))
            if self.dialect == "sqlite" and row is not None and row[0] != boot:
                doubted = (await self._x(queries.DOUBT_UNSETTLED)).rowcount
            await self._x("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (self._sender_key, boot))
        if isinstance(self._db, SqliteDb):
            self._db.wal.flush_now()
        self._sender = True
        if doubted:
            note = "the machine restarted under the last sender: unsettled calls are checked first"
            log.warning("journal.unclean_restart", path=self.where, doubtful=doubted, note=note)
        return requeued, doubted

    async def sync(self) -> None:
        """Return once everything committed before this call is on disk (SQLite: an fsync in a worker thread,
        shared by every caller waiting at the same time; PostgreSQL: at once). Raises :class:`OSError` when the
        disk fails. A sender that did not :meth:`take_over` the journal awaits this between marking operations
        ``sent`` and sending them."""
        await self._db.sync()

    # --- writing --------------------------------------------------------------------------------------

    async def append(self, cmd: CrmCommand, *, linkedid: str = "", pbx_call: str = "", line: str = "") -> int:
        """Journal ``cmd`` (committed when this returns) and return its operation id. ``linkedid``, ``pbx_call``
        and ``line`` name the bridge's call (kept with the leg for the log lines of its delivery)."""
        kind = kind_of(cmd)
        text = encode_command(cmd)
        now = self._clock()
        leg: str | None = getattr(cmd, "crm_leg", None)
        async with self.transaction():
            if leg is None:
                op_id = await self._db.insert(
                    "INSERT INTO operations (crm_leg, seq, kind, command, state, next_attempt_at, created_at, bridge,"
                    " of_call, of_linkedid, of_line) VALUES (NULL, 0, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
                    (kind, text, now, now, self.bridge, pbx_call, linkedid, line),
                )  # fmt: skip
                self._remember(op_id, text, cmd)
                await self._notify_appended()
                return op_id
            names = (leg, linkedid, pbx_call, line)
            known = self._known_call
            if kind in CARD_KINDS and known is not None and known[:3] == (self._serial, self._statements, names):
                call = known[3]  # the step's previous append just wrote (and read) this call row: nothing new
            else:
                call = await self._upsert_call(leg, cmd, kind, linkedid, pbx_call, line, now)
            state, note = await self._initial_state(leg, kind, call)
            op_id = await self._insert_op(leg, kind, text, state, note, now)
            self._remember(op_id, text, cmd)
            if kind == "finish":
                if call["shows_waiting"]:
                    await self._x(
                        queries.SKIP_PENDING_SHOWS, ("skipped: the call ended before the card was sent", now, leg)
                    )
                self._ending(leg)
            await self._refresh_call(leg, now)
            await self._notify_appended()
            self._known_call = None
            if call is not None:
                if kind == "register":  # the register just journaled is the origin unless the leg had one
                    call = {"mode": call["mode"], "ended_at": call["ended_at"],
                            "origin_state": call["origin_state"] or "pending"}  # fmt: skip
                self._known_call = (self._serial, self._statements, names, call)
        log.debug("journal.appended", crm_leg=leg, kind=kind, op=op_id, state=state)
        return op_id

    async def _notify_appended(self) -> None:
        """A shared journal tells its delivery leader, in whatever process, at the commit (one notification a
        transaction however many appends it holds): it wakes at once instead of at its next look."""
        if self.dialect == "postgres":
            await self._x(queries.NOTIFY_APPENDED)

    async def listen(self, wake: Callable[[], None]) -> None:
        """Until cancelled, call ``wake`` whenever an append to this journal commits, in any process (a shared
        journal's delivery leader runs this beside its delivery). SQLite: returns at once (one process appends, and
        it tells its delivery itself)."""
        if self.dialect != "postgres":
            return
        from bridge.journal.pg import PgDb

        assert isinstance(self._db, PgDb)
        await self._db.listen(wake)

    async def _insert_op(self, leg: str, kind: str, text: str, state: str, note: str, now: float) -> int:
        """The leg's next operation (its ``seq`` counted in the same statement)."""
        final = state in ("done", "failed")
        return await self._db.insert(
            "INSERT INTO operations (crm_leg, seq, kind, command, state, last_error, note, next_attempt_at,"
            " created_at, done_at, bridge) SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?"
            " FROM operations WHERE crm_leg = ?",
            (leg, kind, text, state, note if state == "failed" else "", note, now, now, now if final else None,
             self.bridge, leg),
        )  # fmt: skip

    async def _upsert_call(
        self, leg: str, cmd: CrmCommand, kind: str, linkedid: str, pbx_call: str, line: str, now: float
    ) -> Any:
        """The leg's call row, created or updated with what ``cmd`` says about the call, in one statement (two for
        the rare adopt and attach_record). Returns, for a register and an operation that names the CALL_ID, what
        :meth:`_initial_state` needs: the row's ``mode`` and ``ended_at`` and the state of its first register (as it
        was before this operation)."""
        names = (leg, linkedid, pbx_call)
        if isinstance(cmd, CrmRegister):
            started = cmd.started_at
            started_ts = started.timestamp() if started.tzinfo is not None else started.astimezone().timestamp()
            params: tuple[Any, ...] = (
                *names, cmd.line or line, now, now, self.bridge, cmd.phone, int(cmd.call_type), started.isoformat(),
                started_ts, cmd.user_id, cmd.line,
            )  # fmt: skip
            return await self._one(queries.UPSERT_REGISTER, params)
        if isinstance(cmd, CrmFinish):
            answered = now - cmd.duration if cmd.duration > 0 else None
            params = (*names, line, now, now, self.bridge, cmd.user_id, cmd.duration, cmd.status_code, now, answered)
            return await self._one(queries.UPSERT_FINISH, params)
        params = (*names, line, now, now, self.bridge)
        if kind in NEEDS_CALL_ID:
            return await self._one(queries.UPSERT_CALL_ORIGIN, params)
        await self._x(queries.UPSERT_CALL, params)
        if isinstance(cmd, CrmAdopt):
            await self._x(
                "UPDATE calls SET call_id = ?, user_id = ?, phone = ?, line = CASE WHEN ? != '' THEN ? ELSE line END,"
                " call_type = ? WHERE crm_leg = ?",
                (cmd.call_id, cmd.user_id or None, cmd.phone, cmd.line, cmd.line, int(CallType.OUTGOING), leg),
            )
        elif isinstance(cmd, CrmAttachRecord):
            await self._x("UPDATE calls SET recording = ? WHERE crm_leg = ?", (cmd.recording, leg))
        return None

    async def _initial_state(self, leg: str, kind: str, call: Any) -> tuple[str, str]:
        """``pending``, or an operation that is settled on arrival (with the reason). ``call``: what the upsert
        returned (see :meth:`_upsert_call`)."""
        if kind == "adopt":
            return "done", "adopted: Bitrix24 registered this call itself"
        if kind not in NEEDS_CALL_ID:
            return "pending", ""
        if call["origin_state"] is None:
            return "failed", "no register for this call leg"
        if call["origin_state"] == "failed":
            (error,) = await self._one(queries.ORIGIN_ERROR, (leg,))
            return "failed", f"register failed: {error}"
        if kind in CARD_KINDS:
            if call["mode"] == "offline":
                return "done", "skipped: the call is offline (its register did not go through in time)"
            if call["ended_at"] is not None:
                return "done", "skipped: the call has ended"
        return "pending", ""
