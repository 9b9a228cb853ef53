"""What the journal hands out: read-only snapshots of its rows."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from bridge.domain.commands import CrmCommand
from bridge.journal.codec import CodecError, decode_command

NEEDS_CALL_ID = frozenset({"show", "hide", "finish", "attach_record"})
"""Kinds that name the call by its CALL_ID, so they can only go after ``register`` (or ``adopt``)."""
CARD_KINDS = frozenset({"show", "hide"})


@dataclass(frozen=True)
class CallRow:
    """One CRM leg (``crm_leg`` = EXTERNAL_CALL_ID) as the journal knows it."""

    crm_leg: str
    line: str
    phone: str
    linkedid: str
    pbx_call: str
    call_type: int | None
    started_at: str | None
    """ISO-8601 with the offset it was given with."""
    started_ts: float | None
    answered_at: float | None
    ended_at: float | None
    user_id: int | None
    """The user it was registered for; once it has ended, the employee who talked (finish's USER_ID)."""
    duration: int | None
    status_code: str | None
    recording: str | None
    call_id: str | None
    mode: str
    """``online`` or ``offline`` (register did not go through in time: mirrored at the end with SHOW=0)."""
    state: str
    """``open`` (not ended), ``ended`` (ended, operations outstanding), ``done`` or ``failed``."""
    created_at: float
    updated_at: float
    bridge: str = ""
    """The bridge that journaled the call (several may share one PostgreSQL journal)."""

    @classmethod
    def from_row(cls, row: Any) -> CallRow:
        return cls(**{name: row[name] for name in _CALL_FIELDS})


_CALL_FIELDS = tuple(f.name for f in dataclasses.fields(CallRow))
"""The columns a :class:`CallRow` shows (the table also keeps what delivery needs: ``head_op``, ``head_due``)."""


@dataclass(frozen=True)
class OpRow:
    """One operation of the outbox."""

    id: int
    crm_leg: str | None
    seq: int
    kind: str
    command_json: str
    state: str
    """``pending``, ``sent`` (handed to the network, answer not yet recorded), ``done`` or ``failed``."""
    attempts: int
    """Times it was handed to the network without a sign that it did not arrive (more than 0: it may be there)."""
    last_error: str
    note: str
    result: Any
    next_attempt_at: float
    created_at: float
    done_at: float | None
    tries: int = 0
    """Times it was tried, including tries that provably never reached Bitrix24 (the back-off grows with it)."""
    bridge: str = ""
    """The bridge that journaled it."""
    sent_by: str = ""
    """The bridge that last claimed it for sending (``''``: never sent)."""

    @property
    def command(self) -> CrmCommand:
        """The domain command; raises :class:`~bridge.journal.codec.CodecError` if the stored text is damaged."""
        return decode_command(self.command_json)

    @property
    def readable(self) -> bool:
        try:
            decode_command(self.command_json)
        except CodecError:
            return False
        return True

    @classmethod
    def from_row(cls, row: Any) -> OpRow:
        raw_result = row["result"]
        try:
            result = json.loads(raw_result) if raw_result is not None else None
        except ValueError:
            result = raw_result
        return cls(
            id=row["id"],
            crm_leg=row["crm_leg"],
            seq=row["seq"],
            kind=row["kind"],
            command_json=row["command"],
            state=row["state"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            note=row["note"],
            result=result,
            next_attempt_at=row["next_attempt_at"],
            created_at=row["created_at"],
            done_at=row["done_at"],
            tries=row["tries"],
            bridge=row["bridge"],
            sent_by=row["sent_by"],
        )


@dataclass(frozen=True)
class PendingOp:
    """An operation that may be sent now, with what the sender needs to know about its call."""

    id: int
    crm_leg: str | None
    seq: int
    kind: str
    command: CrmCommand
    attempts: int
    """More than 0: it may already have reached Bitrix24 (a crash or a lost answer); check before resending."""
    created_at: float
    call_id: str | None
    mode: str
    call_state: str
    tries: int = 0
    """Times it was tried (see :attr:`OpRow.tries`); the back-off grows with it."""
    pbx_call: str = ""
    """The bridge's call (the caller's channel) this operation belongs to; with ``linkedid`` and ``line`` it names
    the call in delivery's log lines (``bridge.logs.bind_call``). Empty for operations of no call."""
    linkedid: str = ""
    line: str = ""
