"""Reading what Bitrix24 holds about a call, and judging it against what the call was scripted to do.

``/_sim/state`` (``Bitrix24Simulator.state()``) lists every external call and every card shown or hidden. The
helpers here pick out one customer's call, its card history and the tasks it left, and :func:`verdict` lists
every way it differs from an :class:`Expect` (an empty list is a match). The demo's table and the integration
tests use the same judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.phone import digits

ANSWERED = "200"
MISSED = "304"
OUTGOING, INCOMING, CALLBACK = 1, 2, 4
TALK_TOLERANCE = 1.0
"""Seconds DURATION may differ from the scripted conversation (Bitrix24 counts whole seconds)."""


@dataclass(frozen=True)
class Expect:
    """What Bitrix24 should hold for one customer's call once the bridge has mirrored it."""

    phone: str
    """The customer's number: the call is found by it, so each scripted call uses its own."""
    call_type: int
    user: int
    """``finish`` USER_ID: who talked, or who owns the missed call."""
    status: str
    talk: float = 0.0
    """Seconds of conversation (0 for a missed call)."""
    recorded: bool | None = False
    """A record attached (None: either way, e.g. the MixMonitor file of an unanswered outbound call)."""
    shown_to: frozenset[int] = frozenset()
    """Users whose card was shown while the call rang or talked (none for a call mirrored after an outage)."""
    task_for: int | None = None
    """The user a missed-call task is for, when one is expected."""
    offline: bool = False
    """Mirrored after an outage: registered with SHOW=0 and the real start, no card ever shown."""
    crm_call_id: str = ""
    """Bitrix24's own CALL_ID when it registered the call itself (click-to-call)."""


@dataclass(frozen=True)
class CrmCall:
    """One call as Bitrix24 holds it, flattened for tables and assertions."""

    call_id: str
    call_type: int
    user: int
    duration: int
    status: str
    finished: bool
    shown: bool
    record: str
    record_size: int
    cards: Mapping[int, tuple[str, ...]] = field(default_factory=dict)

    @property
    def left_shown(self) -> list[int]:
        """Users whose last card action for this call is ``show``."""
        return sorted(user for user, actions in self.cards.items() if actions and actions[-1] == "show")

    @property
    def shown_to(self) -> frozenset[int]:
        return frozenset(user for user, actions in self.cards.items() if "show" in actions)


def same_number(a: str, b: str) -> bool:
    """Numbers match on their last ten digits (``+7 916...``, ``8916...`` and ``7916...`` are one phone)."""
    return bool(a and b) and digits(a)[-10:] == digits(b)[-10:]


def calls_of(state: Mapping[str, Any], phone: str) -> list[dict[str, Any]]:
    """Every external call Bitrix24 registered for ``phone``, in order."""
    return [c for c in state["calls"] if same_number(str(c.get("PHONE_NUMBER", "")), phone)]


def cards_of(state: Mapping[str, Any], call_id: str) -> dict[int, tuple[str, ...]]:
    """User -> the card actions (``show``/``hide``) for one CALL_ID, in order."""
    found: dict[int, tuple[str, ...]] = {}
    for user, entries in state["cards"].items():
        actions = tuple(e["action"] for e in entries if e.get("CALL_ID") == call_id)
        if actions:
            found[int(user)] = actions
    return found


def tasks_of(state: Mapping[str, Any], phone: str) -> list[dict[str, Any]]:
    """Tasks whose title or description names ``phone``."""
    tail = digits(phone)[-10:]
    return [t for t in state["tasks"] if tail in digits(f"{t.get('title', '')} {t.get('description', '')}")]


def crm_call(state: Mapping[str, Any], raw: Mapping[str, Any]) -> CrmCall:
    finish = raw.get("finish") or {}
    record = raw.get("record") or {}
    return CrmCall(
        call_id=str(raw["CALL_ID"]),
        call_type=int(raw["TYPE"]),
        user=int(finish.get("USER_ID", 0) or 0),
        duration=int(finish.get("DURATION", 0) or 0),
        status=str(finish.get("STATUS_CODE", "")),
        finished=raw.get("status") == "finished",
        shown=bool(raw.get("SHOW")),
        record=str(record.get("name", "")),
        record_size=int(record.get("size", 0) or 0),
        cards=cards_of(state, str(raw["CALL_ID"])),
    )


def verdict(expect: Expect, state: Mapping[str, Any]) -> list[str]:
    """Every way Bitrix24's record of ``expect.phone`` differs from the expectation (empty: it matches)."""
    found = calls_of(state, expect.phone)
    if len(found) != 1:
        return [f"{len(found)} calls in Bitrix24 for {expect.phone}, expected exactly one"]
    call = crm_call(state, found[0])
    problems: list[str] = []

    def differs(what: str, got: object, want: object) -> None:
        if got != want:
            problems.append(f"{what} {got!r}, expected {want!r}")

    differs("finished", call.finished, True)
    differs("TYPE", call.call_type, expect.call_type)
    differs("USER_ID", call.user, expect.user)
    differs("STATUS_CODE", call.status, expect.status)
    if abs(call.duration - expect.talk) > TALK_TOLERANCE:
        problems.append(f"DURATION {call.duration}, expected {expect.talk:g} +- {TALK_TOLERANCE:g}")
    if expect.recorded is not None:
        differs("record attached", bool(call.record and call.record_size > 0), expect.recorded)
    if expect.crm_call_id:
        differs("CALL_ID", call.call_id, expect.crm_call_id)
    if call.left_shown:
        problems.append(f"card left shown to {call.left_shown}")
    if expect.offline:
        differs("SHOW", call.shown, False)
    differs("card shown to", sorted(call.shown_to), sorted(expect.shown_to))
    tasks = tasks_of(state, expect.phone)
    want_tasks = [str(expect.task_for)] if expect.task_for is not None else []
    differs("tasks for", [t.get("responsibleId") for t in tasks], want_tasks)
    return problems
