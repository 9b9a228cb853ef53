"""The durable outbox of Bitrix24 operations (SQLite, WAL; or PostgreSQL, shared): see :mod:`bridge.journal.store`."""

from bridge.journal.blocking import Journal
from bridge.journal.codec import CodecError, decode_command, encode_command, kind_of
from bridge.journal.marks import DoneMark, JournalError
from bridge.journal.rows import CallRow, OpRow, PendingOp
from bridge.journal.store import AsyncJournal

__all__ = [
    "AsyncJournal",
    "CallRow",
    "CodecError",
    "DoneMark",
    "Journal",
    "JournalError",
    "OpRow",
    "PendingOp",
    "decode_command",
    "encode_command",
    "kind_of",
]
