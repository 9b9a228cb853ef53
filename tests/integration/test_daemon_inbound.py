"""The real daemon in-process against both simulators over sockets: whole inbound calls, judged on Bitrix24's state.

Each call uses its own caller number; ``mirrored`` waits until Bitrix24 holds exactly one call for it with the
expected user, status, talk time, record, cards (who saw one, nobody left with one open) and tasks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bridge.domain.scheme import Availability
from bridge.sim.asterisk import Answer, Busy, NeverAnswer, Unregistered
from bridge.sim.stage import Stage, stage
from bridge.sim.verdict import ANSWERED, INCOMING, MISSED, Expect
from tests.eventually import eventually
from tests.integration.daemon_support import agents_rung, mirrored

SALES = "74951112233"
SUPPORT_IVR = "74951112244"
SUPPORT_EVERYBODY = "74951112255"
NIGHT = "74951112266"


async def absence_known(s: Stage) -> None:
    """1004 is away today in Bitrix24: wait until the daemon has read that, as a walk would."""
    await eventually(lambda: s.daemon.dispatcher.availability.of("1004") is Availability.ABSENT)


async def test_first_agent_answers_at_once(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(SALES, "79990000001", "Пётр", hangup_after_answer=1.0)
        await asyncio.wait_for(call.ended(), 20)
        crm = await mirrored(
            s, Expect("79990000001", INCOMING, 11, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11}))
        )
        assert crm.cards == {11: ("show", "hide")}
        assert crm.record.endswith(".wav") and crm.record_size > 1000


@pytest.mark.parametrize("mode", ["on", "off"])
async def test_walk_past_a_silent_agent_to_one_who_answers(tmp_path: Path, mode: str) -> None:
    """The same over ARI REST on the events WebSocket (``on``) and over HTTP (``off``)."""

    def over(data: dict[str, Any]) -> None:
        data["asterisk"]["rest_over_websocket"] = mode

    async with stage(tmp_path, tweak=over) as s:
        s.pbx.set_party("1001", NeverAnswer())
        s.pbx.set_party("1002", Answer(after=0.2))
        call = await s.pbx.place_inbound_call(SALES, "79990000002", hangup_after_answer=1.2)
        await asyncio.wait_for(call.ended(), 20)
        crm = await mirrored(
            s, Expect("79990000002", INCOMING, 12, ANSWERED, talk=1.2, recorded=True, shown_to=frozenset({11, 12}))
        )
        assert crm.cards == {11: ("show", "hide"), 12: ("show", "hide")}
        cards = s.crm.state()["cards"]
        assert cards["11"][1]["at"] <= cards["12"][0]["at"], "1002's card opened before 1001 stopped ringing"
        ways = {(r["method"], r["path"].split("/")[2], r["via"]) for r in s.pbx.requests if r["proto"] == "ari"}
    assert ("POST", "channels", "websocket" if mode == "on" else "http") in ways, "the legs were originated so"
    assert {way for _, _, way in ways} == ({"http", "websocket"} if mode == "on" else {"http"})


async def test_busy_and_unregistered_agents_are_skipped(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Busy())
        s.pbx.set_party("1002", Unregistered())
        s.pbx.set_party("1003", Answer(after=0.2))
        s.pbx.set_device_state("PJSIP/1001", "INUSE")  # on another call
        s.pbx.set_endpoint_state("PJSIP/1002", "offline")  # phone not registered
        book = s.daemon.dispatcher.availability
        await eventually(lambda: (book.of("1001"), book.of("1002")) == (Availability.BUSY, Availability.UNREGISTERED))
        call = await s.pbx.place_inbound_call(SALES, "79990000003", hangup_after_answer=1.0)
        await asyncio.wait_for(call.ended(), 20)
        await mirrored(
            s, Expect("79990000003", INCOMING, 13, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({13}))
        )
        assert agents_rung(s) == ["1003"], "busy and unregistered agents must not even ring"


async def test_an_agent_found_busy_by_dialling_is_passed_over(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Busy())  # no presence information: the dial itself says BUSY
        s.pbx.set_party("1002", Unregistered())
        s.pbx.set_party("1003", Answer(after=0.2))
        call = await s.pbx.place_inbound_call(SALES, "79990000013", hangup_after_answer=1.0)
        await asyncio.wait_for(call.ended(), 20)
        crm = await mirrored(
            s,
            Expect("79990000013", INCOMING, 13, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11, 12, 13})),
        )
        assert crm.cards[11] == crm.cards[12] == ("show", "hide")


async def test_everybody_rings_at_once_and_the_rest_are_hidden_on_answer(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        for ext in ("1001", "1002", "1003"):
            s.pbx.set_party(ext, NeverAnswer())
        s.pbx.set_party("1006", Answer(after=0.4))
        call = await s.pbx.place_inbound_call(SUPPORT_EVERYBODY, "79990000004", hangup_after_answer=1.0)
        await asyncio.wait_for(call.ended(), 20)
        crm = await mirrored(
            s,
            Expect(
                "79990000004", INCOMING, 16, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11, 12, 13, 16})
            ),
        )
        assert all(actions == ("show", "hide") for actions in crm.cards.values()), crm.cards
        shown = {int(user): entries[0]["at"] for user, entries in s.crm.state()["cards"].items()}
        assert max(shown.values()) - min(shown.values()) < 0.2, "the group's cards did not open together"


async def test_ivr_choice_routes_to_the_chosen_queue(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", NeverAnswer())
        s.pbx.set_party("1002", Answer(after=0.2))
        call = await s.pbx.place_inbound_call(SUPPORT_IVR, "79990000005", dtmf=[(0.4, "1")], hangup_after_answer=1.0)
        await asyncio.wait_for(call.ended(), 20)
        # "1" is sales (in order: 1001, then 1002); the menu's fallback would ring the support group together
        await mirrored(
            s, Expect("79990000005", INCOMING, 12, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11, 12}))
        )


async def test_after_hours_goes_to_voicemail_with_a_task(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        call = await s.pbx.place_inbound_call(NIGHT, "79990000006", hangup_after=1.5)
        await asyncio.wait_for(call.ended(), 20)
        crm = await mirrored(s, Expect("79990000006", INCOMING, 15, MISSED, recorded=True, task_for=15))
        assert "voicemail" in crm.record
        assert agents_rung(s) == []


async def test_responsible_manager_then_supervisor(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1002", NeverAnswer())
        s.pbx.set_party("1005", Answer(after=0.2))
        call = await s.pbx.place_inbound_call(SALES, "79161234567", "Иван Петров", hangup_after_answer=1.0)
        await asyncio.wait_for(call.ended(), 20)
        crm = await mirrored(
            s, Expect("79161234567", INCOMING, 15, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({12, 15}))
        )
        assert crm.cards == {12: ("show", "hide"), 15: ("show", "hide")}
        assert agents_rung(s) == ["1002", "1005"]


async def test_missed_call_walks_the_queue_then_voicemail_and_a_task(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        await absence_known(s)
        for ext in ("1001", "1002", "1003", "1004"):
            s.pbx.set_party(ext, NeverAnswer())
        call = await s.pbx.place_inbound_call(SALES, "79990000007", hangup_after=3.5)
        await asyncio.wait_for(call.ended(), 20)
        crm = await mirrored(
            s,
            Expect("79990000007", INCOMING, 15, MISSED, recorded=True, shown_to=frozenset({11, 12, 13}), task_for=15),
        )
        assert "voicemail" in crm.record
        assert "1004" not in agents_rung(s), "1004 is absent today and must be skipped"


async def test_a_group_member_intercepts_a_ringing_call_with_the_code(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", NeverAnswer())
        call = await s.pbx.place_inbound_call(SALES, "79990000008", hangup_after_answer=1.0)
        await eventually(lambda: agents_rung(s) == ["1001"])
        await s.pbx.intercept("1003", "*8", args=("intercept", "1003", "*8"))
        await asyncio.wait_for(call.ended(), 10)
        crm = await mirrored(
            s, Expect("79990000008", INCOMING, 13, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11, 13}))
        )
        assert crm.cards[11] == ("show", "hide")


async def test_a_dismissed_employee_in_the_map_is_skipped_and_never_named_in_a_finish(tmp_path: Path) -> None:
    """[employees.map.1007] is Fyodor (user 17), whom Bitrix24 has dismissed: his phone would answer, but the walk
    passes him by like an unavailable agent and the call is Anna's from register to finish."""

    def with_fyodor(data: dict[str, Any]) -> None:
        data["employees"]["map"]["1007"] = {"user_id": 17, "unavailable_to_mobile": True, "mobile": "79160001007"}
        data["queues"]["sales"]["members"] = ["1007", "1001", "1002"]

    async with stage(tmp_path, tweak=with_fyodor) as s:
        await eventually(lambda: s.daemon.current_plan().employees["1007"].dismissed)
        s.pbx.set_party("1007", Answer(after=0.1))
        s.pbx.set_party("1001", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(SALES, "79990000077", hangup_after_answer=1.0)
        await asyncio.wait_for(call.ended(), 20)
        await mirrored(s, Expect("79990000077", INCOMING, 11, ANSWERED, talk=1.0, recorded=True,
                                 shown_to=frozenset({11})))  # fmt: skip
        assert "1007" not in agents_rung(s), "the dismissed employee was never rung"
        assert not [r for r in s.pbx.requests if "79160001007" in str(r["params"])], "nor his mobile"
        finishes = [c["finish"]["USER_ID"] for c in s.crm.state()["calls"] if c.get("finish")]
        assert 17 not in finishes
