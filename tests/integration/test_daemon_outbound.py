"""Calls the daemon does not route: a desk phone dialling out (seen on AMI only) and callbacks it places itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.sim.asterisk import Answer, Busy
from bridge.sim.stage import stage
from bridge.sim.verdict import ANSWERED, CALLBACK, OUTGOING, Expect, calls_of
from tests.eventually import eventually
from tests.integration.daemon_support import mirrored

SALES = "74951112233"


async def test_outbound_call_from_a_desk_phone_is_mirrored_with_talk_time(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        call = await s.pbx.place_outbound_call("1003", "79260000001", answer_after=0.3, talk=1.4)
        await asyncio.wait_for(call.ended(), 20)
        crm = await mirrored(
            s, Expect("79260000001", OUTGOING, 13, ANSWERED, talk=1.4, recorded=True, shown_to=frozenset({13}))
        )
        assert crm.cards == {13: ("show", "hide")}
        assert not [r for r in s.pbx.requests if r["proto"] == "ari" and r["method"] == "POST"], (
            "the bridge only watches a desk phone's call; it must not command the PBX"
        )


async def test_outbound_call_to_a_busy_number_is_486(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("79260000002", Busy())
        call = await s.pbx.place_outbound_call("1001", "79260000002")
        await asyncio.wait_for(call.ended(), 20)
        await mirrored(s, Expect("79260000002", OUTGOING, 11, "486", recorded=None, shown_to=frozenset({11})))


async def test_callback_request_calls_the_client_then_the_line_queue_as_type_4(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("79260000003", Answer(after=0.2))
        s.pbx.set_party("1001", Answer(after=0.2, talk=1.2))
        await s.crm.callback_request("79260000003", "Please call me about the delivery", line=SALES)
        crm = await mirrored(
            s, Expect("79260000003", CALLBACK, 11, ANSWERED, talk=1.2, recorded=True, shown_to=frozenset({11}))
        )
        assert crm.cards[11] == ("show", "hide")
        dialled = [r["params"] for r in s.pbx.requests if r["params"].get("endpoint") == "PJSIP/79260000003@trunk"]
        assert len(dialled) == 1 and dialled[0]["appArgs"] == f"inbound,{SALES},callback,79260000003"


async def test_callback_to_a_client_who_does_not_pick_up_leaves_nothing_in_bitrix24(tmp_path: Path) -> None:
    async with stage(tmp_path, ring_seconds=0.1) as s:
        s.pbx.set_party("79260000004", Busy())
        await s.crm.callback_request("79260000004", "call me", line=SALES)
        await eventually(lambda: any(r["params"].get("endpoint") == "PJSIP/79260000004@trunk" for r in s.pbx.requests))
        await eventually(lambda: not s.pbx.channels())
        assert calls_of(s.crm.state(), "79260000004") == []
        assert s.daemon.dispatcher.active == 0
        assert s.daemon.dispatcher.callbacks_dialling == 1
        await eventually(lambda: s.daemon.dispatcher.callbacks_dialling == 0, timeout=5)
