"""ARI's event filter on a real Asterisk 20.20.1 (``PUT /applications/{app}/eventFilter``), as the link uses it and the
simulator models it: the body itself is the filter (aioswagger11's ``{"filter": {...}}`` changes nothing), and it
filters the socket's RESTResponses as well as events."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.eventually import eventually
from tests.real.ami import Ami
from tests.real.site import RealPbx
from tests.real.test_ari_over_websocket import PAIR, Wire, wire


async def put_filter(w: Wire, body: Any) -> tuple[int, Any]:
    async with w.session.put(f"{w.base}/ari/applications/b24bridge/eventFilter", json=body) as response:
        return response.status, await response.json() if response.content_type == "application/json" else None


def kinds(w: Wire, after: int = 0) -> set[str]:
    return {str(frame.get("type")) for frame in w.frames[after:]}


async def test_the_filter_is_the_body_itself_and_holds_back_answers_too(real_pbx: RealPbx) -> None:
    kit = real_pbx.kit
    ami = await Ami.connect(kit.ports.pbx_ami, kit.ami_user, kit.ami_secret, "pbx")
    try:
        async with wire(real_pbx) as w:
            status, app = await put_filter(w, {"filter": {"allowed": [{"type": "StasisStart"}]}})
            assert (status, app["events_allowed"], app["events_disallowed"]) == (200, [], [])
            assert (await put_filter(w, {"allowed": "StasisStart"}))[0] == 400
            assert (await put_filter(w, {"allowed": [{"name": "StasisStart"}]}))[0] == 400
            status, app = await put_filter(w, {"allowed": [{"type": "StasisStart"}]})
            assert (status, app["events_allowed"]) == (200, [{"type": "StasisStart"}])
            held = w.send("GET", "asterisk/ping")
            answer = await ami.action(
                "Originate", Channel=f"Local/{PAIR}@from-trunk", Context="callers", Exten="s", Priority="1",
                CallerID='"Customer" <79990000202>', Timeout="30000", Async="true", Variable="CALLER_HANGUP_AFTER=30",
            )  # fmt: skip
            assert answer.get("Response") == "Success", answer
            await eventually(lambda: w.index("StasisStart") >= 0, timeout=15)
            channel = w.frames[w.index("StasisStart")]["channel"]["id"]
            await w.http("POST", f"channels/{channel}/answer")
            await w.http("POST", f"channels/{channel}/variable", variable="X", value="1")
            await asyncio.sleep(1.0)
            assert kinds(w) == {"StasisStart"}, "no ChannelVarset, ChannelStateChange, ... and no RESTResponse"
            status, _ = await put_filter(w, {"allowed": [{"type": "StasisStart"}, {"type": "RESTResponse"}]})
            assert status == 200
            asked = w.send("GET", "asterisk/ping")
            await eventually(lambda: w.index("RESTResponse", request_id=asked) >= 0, timeout=10)
            status, app = await put_filter(w, {})
            assert (status, app["events_allowed"]) == (200, [])
            await w.http("DELETE", f"channels/{channel}")
            await eventually(lambda: w.index("StasisEnd") >= 0, timeout=10)
            assert "ChannelHangupRequest" in kinds(w), "every event comes again"
            assert [f for f in w.frames if f.get("request_id") == held] == [], "a held-back answer never comes"
    finally:
        await ami.close()
