"""The chaos checks themselves: each broken invariant is caught, and a faithful mirror passes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from bridge.sim.asterisk import Answer, NeverAnswer
from tests.chaos.callcentre import make_lanes
from tests.chaos.invariants import check_invariants
from tests.chaos.scripts import ANSWERED, MISSED, CallScript
from tests.chaos.witness import Conversation

LANE = make_lanes(2)[1]  # agents 2011, 2012; owner 2019
OTHER_LANE = make_lanes(2)[0]


@dataclass
class Item:
    script: CallScript
    talks: list[Conversation] = field(default_factory=list)
    cut: bool = False
    disturbed: bool = False
    seen: bool = True


def answered(seq: int, talk: float = 2.0) -> Item:
    script = CallScript(seq, LANE, "first_talks", f"7999{seq:07d}", Answer(0.2, talk), NeverAnswer(), 10.0, None,
                        2011, talk, ANSWERED)  # fmt: skip
    return Item(script, [Conversation("2011", f"agent-{seq}", 100.0, 100.0 + talk)])


def missed(seq: int) -> Item:
    script = CallScript(seq, LANE, "gives_up", f"7999{seq:07d}", NeverAnswer(), NeverAnswer(), 0.5, None,
                        2019, 0.0, MISSED)  # fmt: skip
    return Item(script)


def crm_call(item: Item, user: int, duration: int, status: str, **extra: Any) -> dict[str, Any]:
    seq = item.script.seq
    return {
        "CALL_ID": f"externalCall.{seq}", "EXTERNAL_CALL_ID": f"chan.{seq}.1", "PHONE_NUMBER": f"+{item.script.caller}",
        "LINE_NUMBER": LANE.line, "TYPE": 2, "status": "finished", "finish_attempts": 1,
        "finish": {"USER_ID": user, "DURATION": duration, "STATUS_CODE": status}, **extra,
    }  # fmt: skip


def faithful(items: list[Item]) -> dict[str, Any]:
    """Bitrix24 as a correct bridge leaves it: the talker's card shown then hidden by the finish."""
    calls: list[dict[str, Any]] = []
    cards: dict[str, list[dict[str, str]]] = {}
    for item in items:
        s = item.script
        calls.append(crm_call(item, s.user_id, round(s.talk), s.status))
        if s.status == ANSWERED:
            cards.setdefault(str(s.user_id), []).extend(
                [{"action": "show", "CALL_ID": f"externalCall.{s.seq}"},
                 {"action": "hide", "CALL_ID": f"externalCall.{s.seq}"}]
            )  # fmt: skip
    return {"calls": calls, "cards": cards}


def kinds(items: list[Item], state: dict[str, Any]) -> list[str]:
    return [p.kind for p in check_invariants(items, state)]


def test_a_faithful_mirror_passes() -> None:
    items = [answered(1, 2.4), missed(2)]
    assert check_invariants(items, faithful(items)) == []


def test_missing_duplicated_and_stray_calls_are_caught() -> None:
    items = [answered(1), missed(2)]
    state = faithful(items)
    missing = {**state, "calls": state["calls"][:1]}
    assert kinds(items, missing) == ["presence"]
    # the daemon never heard of it: its start went down with the ARI connection
    assert kinds([items[0], replace(items[1], disturbed=True, seen=False)], missing) == ["unseen_in_gap"]
    twice = {**state, "calls": [*state["calls"], dict(state["calls"][1], CALL_ID="x", EXTERNAL_CALL_ID="other")]}
    assert kinds(items, twice) == ["presence"]
    same_id = {**state, "calls": [state["calls"][0], dict(state["calls"][1], EXTERNAL_CALL_ID="chan.1.1")]}
    assert kinds(items, same_id) == ["presence"]
    stray = {**state, "calls": [*state["calls"], dict(state["calls"][0], PHONE_NUMBER="79995550000")]}
    assert "presence" in kinds(items, stray)


@pytest.mark.parametrize(
    ("user", "duration", "status", "attempts", "ok"),
    [
        (2011, 2, ANSWERED, 1, True),
        (2011, 3, ANSWERED, 1, True),  # within 1 s of 2.0
        (2011, 4, ANSWERED, 1, False),
        (2012, 2, ANSWERED, 1, False),  # the wrong employee
        (2019, 0, MISSED, 1, False),
        (2011, 2, ANSWERED, 2, False),  # finish sent twice
    ],
)
def test_the_finish_must_match_the_ledger(user: int, duration: int, status: str, attempts: int, ok: bool) -> None:
    items = [answered(1, 2.0)]
    state = faithful(items)
    state["calls"] = [crm_call(items[0], user, duration, status, finish_attempts=attempts)]
    assert kinds(items, state) == ([] if ok else ["finish"])


def test_an_unfinished_call_is_caught() -> None:
    items = [missed(1)]
    state = faithful(items)
    state["calls"][0] = {k: v for k, v in state["calls"][0].items() if k != "finish"} | {"status": "active"}
    assert kinds(items, state) == ["finish"]


def test_cards_left_shown_or_shown_to_strangers_are_caught() -> None:
    items = [answered(1)]
    state = faithful(items)
    state["cards"]["2012"] = [{"action": "show", "CALL_ID": "externalCall.1"}]
    assert kinds(items, state) == ["cards"]
    stranger = int(OTHER_LANE.first)
    state["cards"]["2012"].append({"action": "hide", "CALL_ID": "externalCall.1"})
    state["cards"][str(stranger)] = [{"action": "show", "CALL_ID": "externalCall.1"},
                                     {"action": "hide", "CALL_ID": "externalCall.1"}]  # fmt: skip
    assert kinds(items, state) == ["cards"]


def test_the_pbx_must_do_what_the_script_says_unless_ari_was_down() -> None:
    item = answered(1)
    item.talks = [Conversation("2012", "agent-x", 100.0, 102.0)]  # the wrong agent took the call
    state = faithful([item])
    state["calls"] = [crm_call(item, 2012, 2, ANSWERED)]
    assert kinds([item], state) == ["pbx"]
    # with ARI down the PBX is the ledger: Bitrix24 agrees with it, so nothing is wrong
    assert kinds([replace(item, disturbed=True)], state) == []
    # but Bitrix24 must still agree with the PBX
    state["calls"] = [crm_call(item, 2011, 2, ANSWERED)]
    assert kinds([replace(item, disturbed=True)], state) == ["finish"]


@pytest.mark.parametrize(
    ("user", "duration", "status", "kind"),
    [
        (2019, 0, MISSED, None),  # the channel was gone at the restart: missed for the registered user
        (2011, 1, ANSWERED, None),  # adopted while talking: a lower bound of the talk, for the talker
        (2011, 2, ANSWERED, None),  # ... or exactly as it happened
        (2011, 9, ANSWERED, "reconciled_talk"),  # more talk than the PBX saw
        (2011, 0, MISSED, "finish"),  # missed, but not for the registered user
        (2019, 2, ANSWERED, "reconciled_talk"),  # answered, but for the registered owner instead of the talker
        (2012, 2, ANSWERED, "reconciled_talk"),  # ... or for an agent who did not talk
    ],
)
def test_a_call_cut_by_the_kill_may_end_as_reconciled(user: int, duration: int, status: str, kind: str | None) -> None:
    item = replace(answered(1, 2.0), cut=True)
    state = faithful([item])
    state["calls"] = [crm_call(item, user, duration, status)]
    assert kinds([item], state) == ([] if kind is None else [kind])
