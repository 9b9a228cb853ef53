"""The durable outbox of Bitrix24 operations (SQLite, WAL): see :mod:`bridge.journal.store`."""

from bridge.journal.codec import CodecError, decode_command, encode_command, kind_of
from bridge.journal.marks import JournalError
from bridge.journal.rows import CallRow, OpRow, PendingOp
from bridge.journal.store import Journal

__all__ = [
    "CallRow",
    "CodecError",
    "Journal",
    "JournalError",
    "OpRow",
    "PendingOp",
    "decode_command",
    "encode_command",
    "kind_of",
]
