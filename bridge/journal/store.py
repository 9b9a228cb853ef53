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
from pathlib import Path

import structlog

from bridge.domain.commands import CallType, CrmAdopt, CrmAttachRecord, CrmCommand, CrmFinish, CrmRegister
from bridge.journal import queries
from bridge.journal.codec import encode_command, kind_of
from bridge.journal.durability import WalSync, boot_id
from bridge.journal.marks import JournalError, JournalMarks
from bridge.journal.reading import Clock
from bridge.journal.rows import CARD_KINDS, NEEDS_CALL_ID
from bridge.journal.schema import SchemaError, migrate

log = structlog.get_logger(__name__)


class Journal(JournalMarks):
    """The outbox; the queries (``ready``, ``calls``, ...) come from the reader, the marks from :mod:`.marks`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Clock) -> None:
        super().__init__(conn, clock, WalSync(path))
        self.path = path
        self._sender = False

    @classmethod
    def open(cls, path: Path | str, *, clock: Clock = time.time) -> Journal:
        """Open (creating if needed) the journal at ``path`` and bring its schema up to date."""
        path = Path(path)
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
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
            version = migrate(conn)
        except (sqlite3.Error, SchemaError) as exc:
            conn.close()
            raise JournalError(f"cannot use the journal {path}: {exc}") from None
        if mode != "wal":
            log.warning("journal.not_wal", path=str(path), mode=mode)
        log.debug("journal.opened", path=str(path), schema=version)
        return cls(conn, path, clock)

    def close(self) -> None:
        """Close; a sender that took the journal over leaves it clean (see the module docstring)."""
        if self._sender:
            try:
                with self.transaction():
                    self._x("DELETE FROM meta WHERE key = 'sender_boot'")
            except sqlite3.Error as exc:
                log.error("journal.close_failed", path=str(self.path), error=str(exc))
        self.wal.close()
        self._conn.close()

    def take_over(self) -> tuple[int, int]:
        """Become the journal's sender (the delivery, once, before it sends anything). What a dead process left
        ``sent`` goes back to the queue, doubtful (:meth:`requeue_sent`); if that process never closed the journal
        and the machine has restarted since, every register and finish not yet done becomes doubtful too. The
        record of this start is on disk when this returns. Returns (requeued, made doubtful)."""
        requeued = self.requeue_sent()
        boot = boot_id()
        with self.transaction():
            row = self._x("SELECT value FROM meta WHERE key = 'sender_boot'").fetchone()
            doubted = self._x(queries.DOUBT_UNSETTLED).rowcount if row is not None and row[0] != boot else 0
            self._x("INSERT OR REPLACE INTO meta (key, value) VALUES ('sender_boot', ?)", (boot,))
        self.wal.flush_now()
        self._sender = True
        if doubted:
            note = "the machine restarted under the last sender: unsettled calls are checked first"
            log.warning("journal.unclean_restart", path=str(self.path), doubtful=doubted, note=note)
        return requeued, doubted

    async def sync(self) -> None:
        """Return once everything committed before this call is on disk (an fsync in a worker thread, shared by
        every caller waiting at the same time). Raises :class:`OSError` when the disk fails. A sender that did not
        :meth:`take_over` the journal awaits this between marking operations ``sent`` and sending them."""
        await self.wal.sync()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing --------------------------------------------------------------------------------------

    def append(self, cmd: CrmCommand, *, linkedid: str = "", pbx_call: str = "", line: str = "") -> int:
        """Journal ``cmd`` (committed when this returns) and return its operation id. ``linkedid``, ``pbx_call``
        and ``line`` name the bridge's call (kept with the leg for the log lines of its delivery)."""
        kind = kind_of(cmd)
        text = encode_command(cmd)
        now = self._clock()
        leg: str | None = getattr(cmd, "crm_leg", None)
        with self.transaction():
            if leg is None:
                op_id = self._insert_op(None, 0, kind, text, "pending", "", now)
                self._x("UPDATE operations SET of_call = ?, of_linkedid = ?, of_line = ? WHERE id = ?",
                        (pbx_call, linkedid, line, op_id))  # fmt: skip
                return op_id
            self._upsert_call(leg, cmd, linkedid, pbx_call, now)
            if line:
                self._x("UPDATE calls SET line = ? WHERE crm_leg = ? AND line = ''", (line, leg))
            state, note = self._initial_state(leg, kind)
            (seq,) = self._x("SELECT COALESCE(MAX(seq), 0) + 1 FROM operations WHERE crm_leg = ?", (leg,)).fetchone()
            op_id = self._insert_op(leg, seq, kind, text, state, note, now)
            if kind == "finish":
                self._x(queries.SKIP_PENDING_SHOWS, ("skipped: the call ended before the card was sent", now, leg))
            self._refresh_call(leg, now)
        log.debug("journal.appended", crm_leg=leg, kind=kind, op=op_id, state=state)
        return op_id

    def _insert_op(self, leg: str | None, seq: int, kind: str, text: str, state: str, note: str, now: float) -> int:
        final = state in ("done", "failed")
        cur = self._x(
            "INSERT INTO operations (crm_leg, seq, kind, command, state, last_error, note, next_attempt_at,"
            " created_at, done_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (leg, seq, kind, text, state, note if state == "failed" else "", note, now, now, now if final else None),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _upsert_call(self, leg: str, cmd: CrmCommand, linkedid: str, pbx_call: str, now: float) -> None:
        self._x(
            "INSERT OR IGNORE INTO calls (crm_leg, linkedid, pbx_call, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (leg, linkedid, pbx_call, now, now),
        )
        if linkedid or pbx_call:
            self._x(
                "UPDATE calls SET linkedid = CASE WHEN ? != '' THEN ? ELSE linkedid END,"
                " pbx_call = CASE WHEN ? != '' THEN ? ELSE pbx_call END WHERE crm_leg = ?",
                (linkedid, linkedid, pbx_call, pbx_call, leg),
            )
        if isinstance(cmd, CrmRegister):
            started = cmd.started_at
            started_ts = started.timestamp() if started.tzinfo is not None else started.astimezone().timestamp()
            self._x(
                "UPDATE calls SET line = ?, phone = ?, call_type = ?, started_at = ?, started_ts = ?, user_id = ?"
                " WHERE crm_leg = ?",
                (cmd.line, cmd.phone, int(cmd.call_type), started.isoformat(), started_ts, cmd.user_id, leg),
            )
        elif isinstance(cmd, CrmAdopt):
            self._x(
                "UPDATE calls SET call_id = ?, user_id = ?, phone = ?, line = ?, call_type = ? WHERE crm_leg = ?",
                (cmd.call_id, cmd.user_id or None, cmd.phone, cmd.line, int(CallType.OUTGOING), leg),
            )
        elif isinstance(cmd, CrmFinish):
            answered = now - cmd.duration if cmd.duration > 0 else None
            self._x(
                "UPDATE calls SET user_id = ?, duration = ?, status_code = ?, ended_at = ?, answered_at = ?"
                " WHERE crm_leg = ?",
                (cmd.user_id, cmd.duration, cmd.status_code, now, answered, leg),
            )
        elif isinstance(cmd, CrmAttachRecord):
            self._x("UPDATE calls SET recording = ? WHERE crm_leg = ?", (cmd.recording, leg))

    def _initial_state(self, leg: str, kind: str) -> tuple[str, str]:
        """``pending``, or an operation that is settled on arrival (with the reason)."""
        if kind == "adopt":
            return "done", "adopted: Bitrix24 registered this call itself"
        if kind not in NEEDS_CALL_ID:
            return "pending", ""
        origin = self._x(
            "SELECT state, last_error FROM operations WHERE crm_leg = ? AND kind IN ('register', 'adopt')"
            " ORDER BY seq LIMIT 1",
            (leg,),
        ).fetchone()
        if origin is None:
            return "failed", "no register for this call leg"
        if origin["state"] == "failed":
            return "failed", f"register failed: {origin['last_error']}"
        call = self._x("SELECT mode, ended_at FROM calls WHERE crm_leg = ?", (leg,)).fetchone()
        if kind in CARD_KINDS:
            if call["mode"] == "offline":
                return "done", "skipped: the call is offline (its register did not go through in time)"
            if call["ended_at"] is not None:
                return "done", "skipped: the call has ended"
        return "pending", ""
