"""The journal as an operator reads it: plain data for ``--json`` and a rich table for the terminal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.text import Text

from bridge.journal.rows import CallRow, OpRow
from bridge.journal.store import AsyncJournal

OP_STATES = {"pending": ("pending", "sent"), "failed": ("failed",), "done": ("done",)}
STATE_STYLE = {"done": "green", "failed": "bold red", "pending": "yellow", "sent": "cyan", "open": "cyan",
               "ended": "yellow"}  # fmt: skip


def when(unix: float | None) -> str | None:
    """A journal time (unix seconds) as local ISO-8601 with its offset."""
    return None if unix is None else datetime.fromtimestamp(unix).astimezone().isoformat(timespec="seconds")


def op_data(op: OpRow) -> dict[str, Any]:
    return {
        "id": op.id,
        "seq": op.seq,
        "kind": op.kind,
        "state": op.state,
        "attempts": op.attempts,
        "note": op.note,
        "last_error": op.last_error,
        "next_attempt_at": when(op.next_attempt_at) if op.state in ("pending", "sent") else None,
        "created_at": when(op.created_at),
        "done_at": when(op.done_at),
        "command": op.command_json,
    }


def call_data(call: CallRow, ops: list[OpRow]) -> dict[str, Any]:
    return {
        "crm_leg": call.crm_leg,
        "call_id": call.call_id,
        "state": call.state,
        "mode": call.mode,
        "line": call.line,
        "phone": call.phone,
        "type": call.call_type,
        "linkedid": call.linkedid,
        "pbx_call": call.pbx_call,
        "started_at": call.started_at,
        "answered_at": when(call.answered_at),
        "ended_at": when(call.ended_at),
        "user_id": call.user_id,
        "duration": call.duration,
        "status_code": call.status_code,
        "recording": call.recording,
        "operations": [op_data(op) for op in ops],
    }


async def snapshot(journal: AsyncJournal, status: str | None) -> dict[str, Any]:
    """Calls (filtered by ``status``: pending / failed / done) with their operations, and the other operations
    (tasks, notifications) in that state."""
    calls = [call_data(c, await journal.operations(c.crm_leg)) for c in await journal.calls(status=status)]
    wanted = OP_STATES.get(status or "", ())
    others = [op_data(op) for op in await journal.operations(None) if not wanted or op.state in wanted]
    return {"calls": calls, "other_operations": others}


def _op_line(op: dict[str, Any]) -> Text:
    line = Text(f"{op['seq'] or '-'} {op['kind']} ")
    line.append(op["state"], style=STATE_STYLE.get(op["state"], ""))
    if op["attempts"] > 1:
        line.append(f" ×{op['attempts']}")
    detail = op["last_error"] if op["state"] in ("failed", "pending") and op["last_error"] else ""
    if not detail and op["note"] not in ("", "delivered", "failed"):
        detail = op["note"]
    if detail:
        line.append(f" ({detail})", style="dim")
    return line


COLUMNS = ("call (EXTERNAL_CALL_ID)", "Bitrix24 CALL_ID", "started", "phone → line", "user", "talk", "status", "state",
           "operations")  # fmt: skip


def rows(data: dict[str, Any]) -> list[list[str | Text]]:
    """The journal as table rows: one per call (its operations one per line), then the operations of no call."""
    out: list[list[str | Text]] = []
    for call in data["calls"]:
        state = Text(call["state"], style=STATE_STYLE.get(call["state"], ""))
        if call["mode"] == "offline":
            state.append(" offline", style="magenta")
        ops = Text("\n").join(_op_line(op) for op in call["operations"])
        out.append([
            call["crm_leg"],
            call["call_id"] or "",
            call["started_at"] or "",
            f"{call['phone']} → {call['line']}",
            "" if call["user_id"] is None else str(call["user_id"]),
            "" if call["duration"] is None else f"{call['duration']} s",
            call["status_code"] or "",
            state,
            ops,
        ])  # fmt: skip
    for op in data["other_operations"]:
        out.append(["(no call)", "", op["created_at"] or "", "", "", "", "", "", _op_line(op)])
    return out
