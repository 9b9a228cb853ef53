"""The trace a fallback call leaves in AstDB, as the generated dialplan writes it and the bridge reads it.

Each call handled by the fallback dialplan writes ``/b24fallback/<UNIQUEID>/<field>`` entries: the line and
caller and start time as it begins, the message it recorded, and, from the ``h`` extension, the answered peer,
talk time and the end time (``end`` last, so a trace with ``end`` is complete).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FAMILY = "b24fallback"
FORGET_CONTEXT = "b24-fallback-forget"
"""The bridge originates ``Local/<UNIQUEID>@b24-fallback-forget`` to delete a journaled trace (no ``system`` right)."""
UNIQUEID_RE = re.compile(r"[0-9]{1,20}\.[0-9]{1,12}")
"""A channel's Uniqueid (epoch.sequence; a trace under any other key is not ours and is left alone)."""
FIELDS = ("line", "caller", "start", "recording", "message", "voicemail", "peer", "talk", "status", "end")


@dataclass(frozen=True)
class FallbackTrace:
    """One call the dialplan routed alone, as its trace tells it (times are Unix seconds)."""

    uniqueid: str
    line: str
    caller: str
    start: int
    end: int
    peer: str = ""
    """The channel that answered (``PJSIP/1001-0000002a``), empty when nobody did."""
    talk: int = 0
    recording: str = ""
    """The stored recording of the conversation (a name under ARI's stored recordings), when answered."""
    message: str = ""
    """The stored recording of the message the caller left, when the call went to voicemail."""
    voicemail: str = ""
    """The extension the message is for."""


def parse_tree(rows: list[tuple[str, str]]) -> tuple[list[FallbackTrace], list[FallbackTrace], list[str]]:
    """``DBGetTree`` rows (key, value) -> (complete traces, traces of calls still in progress (``end`` 0),
    uniqueids of traces that cannot be read)."""
    by_call: dict[str, dict[str, str]] = {}
    for key, value in rows:
        parts = key.strip("/").split("/")
        if len(parts) != 3 or parts[0] != FAMILY or parts[2] not in FIELDS:
            continue
        by_call.setdefault(parts[1], {})[parts[2]] = value
    complete: list[FallbackTrace] = []
    open_: list[FallbackTrace] = []
    bad: list[str] = []
    for uid, fields in sorted(by_call.items()):
        if not UNIQUEID_RE.fullmatch(uid):
            continue
        try:
            trace = FallbackTrace(
                uniqueid=uid,
                line=fields["line"],
                caller=fields.get("caller", ""),
                start=int(fields["start"]),
                end=int(fields.get("end") or 0),
                peer=fields.get("peer", ""),
                talk=int(fields.get("talk") or 0),
                recording=fields.get("recording", ""),
                message=fields.get("message", ""),
                voicemail=fields.get("voicemail", ""),
            )
        except (KeyError, ValueError):
            if "end" in fields:
                bad.append(uid)  # else: its first DB() writes may still be under way
            continue
        (complete if "end" in fields else open_).append(trace)
    return complete, open_, bad
