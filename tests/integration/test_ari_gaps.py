"""PBX commands across a short ARI gap, over real sockets.

The gap is made by the simulator: ``go_silent(ari=True)`` holds every ARI request and event until ``wake()``;
``drop_connections(ari=True)`` closes the events socket so the daemon knows the link is down.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.domain.state import Call
from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.stage import Stage, stage
from bridge.sim.verdict import ANSWERED, INCOMING, MISSED, Expect
from tests.eventually import eventually
from tests.integration.daemon_support import agents_rung, mirrored

SALES = "74951112233"  # queue "sales": 1001, 1002, 1003, 1004 in order, 2 rings each; final: voicemail 1005


def core_call(s: Stage, call_id: str) -> Call:
    call = s.daemon.dispatcher.calls.get(call_id)
    assert call is not None, f"the daemon does not know call {call_id}"
    return call


def ringing_ext(s: Stage, call_id: str) -> list[str]:
    return [leg.ext for leg in core_call(s, call_id).ringing]


def channel_state(s: Stage, channel_id: str) -> str:
    return next((c["state"] for c in s.pbx.channels() if c["id"] == channel_id), "gone")


async def cut_ari(s: Stage) -> None:
    """ARI goes quiet and its events socket drops: the daemon's link is down until ``s.pbx.wake()``."""
    s.pbx.go_silent(ami=False, ari=True)
    await s.pbx.drop_connections(ari=True, ami=False)
    await eventually(lambda: not s.daemon.ari.connected)


async def test_the_queue_walk_goes_on_after_a_short_ari_gap(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", NeverAnswer())
        s.pbx.set_party("1002", Answer(after=0.2))
        call = await s.pbx.place_inbound_call(SALES, "79990000101", hangup_after=30, hangup_after_answer=1.0)
        await eventually(lambda: ringing_ext(s, call.channel_id) == ["1001"])
        await eventually(lambda: channel_state(s, core_call(s, call.channel_id).ringing[0].id) != "gone")
        await cut_ari(s)
        # 1001's ring window passes while ARI is away: the core moves on to 1002, whose ring must wait for the link
        await eventually(lambda: "1001" not in ringing_ext(s, call.channel_id))
        s.pbx.wake()
        await asyncio.wait_for(call.ended(), 20)
        await mirrored(
            s, Expect("79990000101", INCOMING, 12, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11, 12}))
        )


async def test_a_caller_who_hangs_up_during_the_gap_gets_no_ring_after_it(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", NeverAnswer())
        s.pbx.set_party("1002", Answer(after=0.2))
        call = await s.pbx.place_inbound_call(SALES, "79990000102", hangup_after=0.9)
        await eventually(lambda: ringing_ext(s, call.channel_id) == ["1001"])
        await eventually(lambda: channel_state(s, core_call(s, call.channel_id).ringing[0].id) != "gone")
        await cut_ari(s)
        # the ring of 1002 waits for the link; the caller gives up before it is back
        await eventually(lambda: ringing_ext(s, call.channel_id) == ["1002"])
        second = core_call(s, call.channel_id).ringing[0].id
        await asyncio.wait_for(call.ended(), 20)
        s.pbx.wake()
        await mirrored(s, Expect("79990000102", INCOMING, 15, MISSED, shown_to=frozenset({11, 12}), task_for=15))
        # the cancel of 1002's leg was queued after its ring: once it reached the PBX, the ring's turn is past
        await eventually(lambda: any(r["method"] == "DELETE" and r["path"].endswith(second) for r in s.pbx.requests))
        assert "1002" not in agents_rung(s), "a stale ring went out for a caller who had hung up"
