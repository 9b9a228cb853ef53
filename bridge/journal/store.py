"""The outbox: every Bitrix24 operation is committed here before it is sent and marked when Bitrix24 answers.

SQLite in WAL mode with ``synchronous=FULL``: a commit is on disk when ``append``/``mark_*`` return, so neither
``kill -9`` nor a power cut can lose an operation, or the fact that it was handed to the network (``sent``),
which is what keeps a ``finish`` from going out twice. (``NORMAL`` would survive ``kill -9`` too but may lose the
last commits on power loss.) The daemon calls it synchronously from the event loop: each call is one short
transaction on a local file (an fsync, well under a few ms on a server disk), so a thread hop would cost more than
it saves. Group many marks in :meth:`Journal.transaction` to pay one fsync for all of them.

Order rules (see :meth:`Journal.ready`): operations of one leg go strictly in ``seq`` order; anything that names
the CALL_ID waits for ``register``; an offline leg's ``register`` waits for its ``finish`` to be journaled.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import structlog

from bridge.domain.commands import CrmAdopt, CrmAttachRecord, CrmCommand, CrmFinish, CrmRegister
from bridge.journal import queries
from bridge.journal.codec import encode_command, kind_of
from bridge.journal.reading import Clock, JournalReader
from bridge.journal.rows import CARD_KINDS, NEEDS_CALL_ID
from bridge.journal.schema import SchemaError, migrate

log = structlog.get_logger(__name__)


class JournalError(Exception):
    """The journal file cannot be opened or used (the message says why and where)."""


class Journal(JournalReader):
    """The outbox; the queries (``ready``, ``calls``, ``operations``, ``depth``, ...) come from the reader."""

    def __init__(self, conn: sqlite3.Connection, path: Path, clock: Clock) -> None:
        super().__init__(conn, clock)
        self.path = path
        self._depth = 0  # nesting of transaction()

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
        self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic, durable unit; nested uses join the outermost one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self._conn.execute("COMMIT")

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

    def _refresh_call(self, leg: str, now: float) -> None:
        self._x(queries.REFRESH_CALL_STATE, {"leg": leg, "now": now})

    def mark_sent(self, op_ids: list[int]) -> None:
        """Record that these operations are being handed to the network now (one commit for all)."""
        with self.transaction():
            for op_id in op_ids:
                self._x("UPDATE operations SET state = 'sent', attempts = attempts + 1 WHERE id = ?", (op_id,))

    def mark_done(self, op_id: int, result: Any = None, *, call_id: str | None = None, note: str = "delivered") -> None:
        """Bitrix24 confirmed it (or it is settled otherwise: ``note`` says how). ``call_id`` is stored atomically."""
        now = self._clock()
        with self.transaction():
            leg = self._leg_of(op_id)
            self._x(
                "UPDATE operations SET state = 'done', result = ?, note = ?, done_at = ? WHERE id = ?",
                (json.dumps(result, ensure_ascii=False, default=str), note, now, op_id),
            )
            if leg is not None:
                if call_id:
                    self._x("UPDATE calls SET call_id = ? WHERE crm_leg = ?", (call_id, leg))
                self._refresh_call(leg, now)

    def mark_failed(
        self, op_id: int, error: str, permanent: bool, retry_at: float | None = None
    ) -> list[tuple[int, str]]:
        """A transient failure goes back to ``pending`` until ``retry_at``; a permanent one parks the operation and
        every later one of its leg that can no longer succeed (returned as ``(id, kind)``)."""
        now = self._clock()
        cascaded: list[tuple[int, str]] = []
        with self.transaction():
            leg = self._leg_of(op_id)
            if not permanent:
                self._x(
                    "UPDATE operations SET state = 'pending', last_error = ?, next_attempt_at = ? WHERE id = ?",
                    (error, now if retry_at is None else retry_at, op_id),
                )
                return cascaded
            self._x(
                "UPDATE operations SET state = 'failed', last_error = ?, note = 'failed', done_at = ? WHERE id = ?",
                (error, now, op_id),
            )
            if leg is not None:
                row = self._x("SELECT kind, seq FROM operations WHERE id = ?", (op_id,)).fetchone()
                blocked = {"register": NEEDS_CALL_ID, "finish": {"attach_record"}}.get(row["kind"], set())
                for later in self._x(queries.LATER_OPEN_OPS, (leg, row["seq"])).fetchall():
                    if later["kind"] in blocked:
                        reason = f"{row['kind']} failed: {error}"
                        self._x(
                            "UPDATE operations SET state = 'failed', last_error = ?, note = 'failed', done_at = ?"
                            " WHERE id = ?",
                            (reason, now, later["id"]),
                        )
                        cascaded.append((later["id"], later["kind"]))
                self._refresh_call(leg, now)
        return cascaded

    def set_call_id(self, crm_leg: str, call_id: str) -> None:
        with self.transaction():
            self._x("UPDATE calls SET call_id = ?, updated_at = ? WHERE crm_leg = ?", (call_id, self._clock(), crm_leg))

    def take_offline(self, register_timeout: float) -> list[str]:
        """Online legs whose ``register`` is still unsent ``register_timeout`` s after it was journaled go offline
        (see :meth:`go_offline`). Returns those legs."""
        now = self._clock()
        with self.transaction():
            legs = [r[0] for r in self._x(queries.STALE_REGISTERS, (now - register_timeout,)).fetchall()]
            for leg in legs:
                self.go_offline(leg)
        return legs

    def go_offline(self, crm_leg: str) -> None:
        """Mirror this leg without cards: pending show/hide are settled as skipped, and so are later ones."""
        now = self._clock()
        with self.transaction():
            self._x("UPDATE calls SET mode = 'offline', updated_at = ? WHERE crm_leg = ?", (now, crm_leg))
            self._x(queries.SKIP_PENDING_CARDS, ("skipped: the call is offline", now, crm_leg))
            self._refresh_call(crm_leg, now)

    def requeue_sent(self) -> int:
        """After a restart: operations left ``sent`` may or may not have arrived; make them ``pending`` again
        (their ``attempts`` stays > 0, which tells the sender to check first). Returns how many."""
        with self.transaction():
            cur = self._x("UPDATE operations SET state = 'pending', next_attempt_at = ? WHERE state = 'sent'",
                          (self._clock(),))  # fmt: skip
        return cur.rowcount

    def retry_now(self) -> int:
        """Bitrix24 answers again: operations waiting out a back-off are due now (their attempts stay counted, so
        a doubtful one is still checked first). Returns how many."""
        now = self._clock()
        with self.transaction():
            cur = self._x("UPDATE operations SET next_attempt_at = ? WHERE state = 'pending' AND next_attempt_at > ?",
                          (now, now))  # fmt: skip
        return cur.rowcount

    def _park_damaged(self, op_id: int, reason: str) -> None:
        self.mark_failed(op_id, reason, permanent=True)

    def _leg_of(self, op_id: int) -> str | None:
        row = self._x("SELECT crm_leg FROM operations WHERE id = ?", (op_id,)).fetchone()
        if row is None:
            raise JournalError(f"no operation with id {op_id}")
        leg: str | None = row[0]
        return leg
