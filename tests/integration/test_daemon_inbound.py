"""The real daemon in-process against both simulators over sockets: whole inbound calls."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.sim.asterisk import Answer, Busy, NeverAnswer, Unregistered
from bridge.sim.stage import stage
from tests.eventually import eventually

SALES = "74951112233"


def calls_of(state: dict[str, Any], phone: str) -> list[dict[str, Any]]:
    return [c for c in state["calls"] if c["PHONE_NUMBER"].endswith(phone[-10:])]


def card_history(state: dict[str, Any], user: int) -> list[str]:
    return [entry["action"] for entry in state["cards"].get(str(user), [])]


async def test_walk_past_a_silent_agent_to_one_who_answers(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", NeverAnswer())
        s.pbx.set_party("1002", Answer(after=0.2))
        call = await s.pbx.place_inbound_call(SALES, "79990000001", "Пётр", hangup_after_answer=1.2)
        await asyncio.wait_for(call.ended(), 20)

        def finished() -> dict[str, Any]:
            found = calls_of(s.crm.state(), "79990000001")
            assert len(found) == 1 and found[0]["status"] == "finished", found
            return found[0]

        crm_call = await eventually(finished, timeout=15)
        assert crm_call["TYPE"] == 2 and crm_call["LINE_NUMBER"] == SALES
        assert crm_call["finish"]["USER_ID"] == 12
        assert crm_call["finish"]["STATUS_CODE"] == "200"
        assert 1 <= crm_call["finish"]["DURATION"] <= 2
        state = s.crm.state()
        assert card_history(state, 11) == ["show", "hide"]
        assert card_history(state, 12)[0] == "show"


async def test_busy_and_unregistered_agents_are_skipped_and_missed_call_goes_to_owner(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Busy())
        s.pbx.set_party("1002", Unregistered())
        s.pbx.set_party("1003", NeverAnswer())
        s.pbx.set_party("1004", NeverAnswer())
        call = await s.pbx.place_inbound_call(SALES, "79990000002", hangup_after=1.0)
        await asyncio.wait_for(call.ended(), 20)

        def finished() -> dict[str, Any]:
            found = calls_of(s.crm.state(), "79990000002")
            assert len(found) == 1 and found[0]["status"] == "finished", found
            return found[0]

        crm_call = await eventually(finished, timeout=15)
        assert crm_call["finish"]["STATUS_CODE"] == "304"
        assert crm_call["finish"]["DURATION"] == 0
        assert crm_call["finish"]["USER_ID"] == 15  # the queue's missed-call owner
