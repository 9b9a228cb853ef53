"""The outbox: every Bitrix24 operation is committed here before it is sent and marked when Bitrix24 answers.

What it promises:

* ``kill -9`` (or any crash of the process) loses nothing: ``append``/``mark_*`` return once SQLite has written
  the commit into the WAL file, and the operating system keeps what was written when the process dies.
* Nothing goes out on the strength of a mark that a power cut could undo: the sender marks operations ``sent``,
  awaits :meth:`Journal.sync` (which returns once everything committed before it is fsynced) and only then sends.
  So after any crash an operation that may have reached Bitrix24 is known as such (``attempts`` > 0) and is
  checked against the statistics before it is sent again; a ``finish`` never goes out twice.
* A power cut (or a kernel crash) can lose the commits of the last moments that no send depended on: at most
  :data:`~bridge.journal.durability.SYNC_PERIOD` (0.2 s) plus one fsync's worth of appends and marks, because a
  barrier runs by itself that often while something is not yet on disk. Such a lost append is a call event the
  PBX had just reported, lost together with the machine's own memory of it; a lost ``done`` mark makes the
  operation doubtful, so it is checked, never blindly resent. The database itself is never corrupted (WAL with
  ``synchronous=NORMAL`` keeps it consistent; SQLite still fsyncs around every checkpoint).

How: SQLite in WAL mode with ``synchronous=NORMAL`` (a commit costs a ``write``, no fsync) and the fsyncs and
checkpoints in a worker thread (:mod:`bridge.journal.durability`), so the event loop never waits for the disk.
Without a running event loop (the CLI, tests) every commit is fsynced before it returns, as under ``FULL``.

Order rules (see :meth:`Journal.ready`): operations of one leg go strictly in ``seq`` order; anything that names
the CALL_ID waits for ``register``; an offline leg's ``register`` waits for its ``finish`` to be journaled.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import structlog

from bridge.domain.commands import CrmAdopt, CrmAttachRecord, CrmCommand, CrmFinish, CrmRegister
from bridge.journal import queries
from bridge.journal.codec import encode_command, kind_of
from bridge.journal.durability import WalSync
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
        self.wal.close()
        self._conn.close()

    async def sync(self) -> None:
        """Return once everything committed before this call is on disk (an fsync in a worker thread, shared by
        every caller waiting at the same time). Raises :class:`OSError` when the disk fails."""
        await self.wal.sync()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing --------------------------------------------------------------------------------------

    def append(self, cmd: CrmCommand, *, linkedid: str = "", pbx_call: str = "") -> int:
        """Journal ``cmd`` (committed when this returns) and return its operation id."""
        kind = kind_of(cmd)
        text = encode_command(cmd)
        now = self._clock()
        leg: str | None = getattr(cmd, "crm_leg", None)
        with self.transaction():
            if leg is None:
                return self._insert_op(None, 0, kind, text, "pending", "", now)
            self._upsert_call(leg, cmd, linkedid, pbx_call, now)
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
            self._x("UPDATE calls SET call_id = ? WHERE crm_leg = ?", (cmd.call_id, leg))
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
