"""A whole call walk with ARI's REST requests over the events WebSocket gives Bitrix24 what it gets over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.stage import stage
from bridge.sim.verdict import ANSWERED, INCOMING, Expect
from tests.integration.daemon_support import mirrored

SALES = "74951112233"


@pytest.mark.parametrize("mode", ["on", "off"])
async def test_a_walk_mirrors_the_same_over_the_socket_as_over_http(tmp_path: Path, mode: str) -> None:
    def over(data: dict[str, Any]) -> None:
        data["asterisk"]["rest_over_websocket"] = mode

    async with stage(tmp_path, tweak=over) as s:
        s.pbx.set_party("1001", NeverAnswer())
        s.pbx.set_party("1002", Answer(after=0.2))
        call = await s.pbx.place_inbound_call(SALES, "79990000102", hangup_after_answer=1.2)
        await asyncio.wait_for(call.ended(), 20)
        crm = await mirrored(
            s, Expect("79990000102", INCOMING, 12, ANSWERED, talk=1.2, recorded=True, shown_to=frozenset({11, 12}))
        )
        assert crm.cards == {11: ("show", "hide"), 12: ("show", "hide")}
        ways = {(r["method"], r["path"].split("/")[2], r["via"]) for r in s.pbx.requests if r["proto"] == "ari"}
    originated = {("POST", "channels", "websocket" if mode == "on" else "http")}
    assert originated <= ways
    assert {way for _, _, way in ways} == ({"http", "websocket"} if mode == "on" else {"http"})
