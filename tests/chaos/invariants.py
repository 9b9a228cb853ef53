"""What must hold after a chaos run, on the simulators' state, against the ledger of scripted calls.

Bitrix24 against the ledger, for every call placed: exactly one Bitrix24 call (matched by the caller's number,
unique per call) on the lane's line, finished exactly once (``finish_attempts == 1``), for the employee who
talked (else the lane's owner) with 200 (else 304) and a DURATION within 1 s of the talk time; no other Bitrix24
call; no EXTERNAL_CALL_ID twice; cards only for the lane's agents; no card left shown (for every user, the last
action on every CALL_ID is a hide: ``finish`` hides the finishing user's card).

The ledger is the script; where a fault changed what happened on the PBX itself the ledger is what the PBX did
(the witness): a call alive while ARI was down (an agent who answers then cannot enter the application and is
hung up by Asterisk) is checked against the PBX only. Every other call must also have gone on the PBX as
scripted: the right agent talked for the scripted time, or nobody did.

A call cut by the ``kill -9`` may instead end as ``bridge/recovery`` documents the restart's reconciliation:
missed (304, 0 s) for the user it was registered for (the lane's owner) when it ended while no daemon ran; or,
when the restart adopted it in a conversation, answered (200) for the talker with at most the talk time the PBX
saw (the talk seen since the restart is a lower bound). A caller the restart found still waiting is re-routed:
its end must be what the PBX then did, like any call's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tests.chaos.callcentre import user_of
from tests.chaos.scripts import ANSWERED, MISSED, CallScript
from tests.chaos.witness import Conversation

TOLERANCE = 1.0
"""DURATION is whole seconds; the talk time may differ by up to this much."""
SCRIPT_TOLERANCE = 0.5
"""How far the PBX's talk time may be from the script's (connecting takes a moment)."""


class Ledgered(Protocol):
    @property
    def script(self) -> CallScript: ...

    @property
    def talks(self) -> Sequence[Conversation]: ...

    @property
    def cut(self) -> bool: ...

    @property
    def disturbed(self) -> bool: ...

    @property
    def seen(self) -> bool: ...


@dataclass(frozen=True)
class Problem:
    kind: str
    """``presence``, ``finish``, ``pbx`` (the PBX did not do what the script says), ``cards``;
    ``reconciled_talk``: a call cut by the kill finished as answered with more talk than the PBX saw, or for
    somebody else than the talker; ``unseen_in_gap``: a call that entered the application as ARI went down,
    never started by the daemon (both once known daemon bugs, fixed)."""
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Outcome:
    user_id: int
    talk: float
    status: str

    def __str__(self) -> str:
        return f"user {self.user_id}, {self.talk:.1f} s, {self.status}"


def digits_tail(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())[-10:]


def on_the_pbx(item: Ledgered) -> Outcome:
    """What the call must end as in Bitrix24, from what the PBX did."""
    talks = [t for t in item.talks if t.seconds > 0]
    if not talks:
        return Outcome(user_of(item.script.lane.owner), 0.0, MISSED)
    return Outcome(user_of(talks[0].ext), sum(t.seconds for t in talks), ANSWERED)


def scripted(item: Ledgered) -> Outcome:
    s = item.script
    return Outcome(s.user_id, s.talk, s.status)


def check_invariants(placed: Iterable[Ledgered], state: dict[str, Any]) -> list[Problem]:
    """Every broken invariant, one readable line each (empty: all hold)."""
    problems: list[Problem] = []
    calls: list[dict[str, Any]] = state["calls"]
    by_phone: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in calls:
        by_phone[digits_tail(call["PHONE_NUMBER"])].append(call)
    external = Counter(c["EXTERNAL_CALL_ID"] for c in calls)
    problems += [Problem("presence", f"EXTERNAL_CALL_ID {ext} registered {n} times")
                 for ext, n in external.items() if n > 1]  # fmt: skip
    items = list(placed)
    expected_phones = {digits_tail(p.script.caller) for p in items}
    strays = [c for c in calls if digits_tail(c["PHONE_NUMBER"]) not in expected_phones]
    problems += [Problem("presence", f"a call nobody placed: {c['PHONE_NUMBER']} ({c['EXTERNAL_CALL_ID']})")
                 for c in strays]  # fmt: skip
    for item in items:
        if not item.cut and not item.disturbed:
            problems += _check_pbx(item)
        found = by_phone.get(digits_tail(item.script.caller), [])
        if len(found) != 1:
            kind = "unseen_in_gap" if not found and item.disturbed and not item.seen else "presence"
            problems.append(Problem(kind, f"{_name(item)}: {len(found)} Bitrix24 calls instead of 1"))
            continue
        problems += _check_call(item, found[0])
    problems += _check_cards(items, calls, state["cards"])
    return problems


def _name(item: Ledgered) -> str:
    s = item.script
    how = ", cut by the kill" if item.cut else ", ARI was down" if item.disturbed else ""
    return f"call #{s.seq} ({s.kind}, lane {s.lane.index}, from {s.caller}{how})"


def _check_pbx(item: Ledgered) -> list[Problem]:
    """The PBX did what the script says: the daemon routed the call right."""
    want, got = scripted(item), on_the_pbx(item)
    if len(item.talks) > 1 or got.user_id != want.user_id or abs(got.talk - want.talk) > SCRIPT_TOLERANCE:
        talks = [(t.ext, round(t.seconds, 2)) for t in item.talks]
        return [Problem("pbx", f"{_name(item)}: on the PBX {got} (conversations {talks}); the script says {want}")]
    return []


def _check_call(item: Ledgered, call: dict[str, Any]) -> list[Problem]:
    s = item.script
    name = _name(item)
    problems: list[Problem] = []
    if call["LINE_NUMBER"] != s.lane.line or call["TYPE"] != 2:
        text = f"{name}: line {call['LINE_NUMBER']} type {call['TYPE']}, not {s.lane.line} type 2"
        problems.append(Problem("finish", text))
    if call["status"] != "finished" or "finish" not in call:
        return [*problems, Problem("finish", f"{name}: never finished ({call['status']})")]
    if call["finish_attempts"] != 1:
        problems.append(Problem("finish", f"{name}: finish arrived {call['finish_attempts']} times"))
    got = call["finish"]
    user, duration, status = got["USER_ID"], got["DURATION"], got["STATUS_CODE"]
    want = on_the_pbx(item)
    if user == want.user_id and status == want.status and abs(duration - want.talk) <= TOLERANCE:
        return problems
    kind = "finish"
    if item.cut:
        owner = user_of(s.lane.owner)
        if status == MISSED and user == owner and duration == 0:
            return problems
        if status == ANSWERED and want.status == ANSWERED and user == want.user_id:
            if 1 <= duration <= want.talk + TOLERANCE:
                return problems
            kind = "reconciled_talk"
        elif status == ANSWERED:
            kind = "reconciled_talk"
    expected = f"{want}" + (" or as reconciled after the restart" if item.cut else "")
    return [*problems, Problem(kind, f"{name}: finished as user {user}, {duration} s, {status}; expected {expected}")]


def _check_cards(
    items: list[Ledgered], calls: list[dict[str, Any]], cards: dict[str, list[dict[str, Any]]]
) -> list[Problem]:
    problems: list[Problem] = []
    line_of_call = {c["CALL_ID"]: c["LINE_NUMBER"] for c in calls}
    agents_of_line = {i.script.lane.line: {user_of(e) for e in i.script.lane.agents} for i in items}
    for user, history in cards.items():
        last: dict[str, str] = {}
        for entry in history:
            call_id, action = entry["CALL_ID"], entry["action"]
            last[call_id] = action
            if action == "show" and int(user) not in agents_of_line.get(line_of_call.get(call_id, ""), set()):
                text = f"card of {call_id} shown to user {user}, who is not an agent of its lane"
                problems.append(Problem("cards", text))
        problems += [Problem("cards", f"card of {cid} left shown to user {user}")
                     for cid, action in last.items() if action != "hide"]  # fmt: skip
    return problems
