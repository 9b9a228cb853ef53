"""Reconnects and restarts lose nothing: what the daemon finds on the PBX after an ARI gap or a restart, over
real sockets with both simulators (the chaos suite's findings, one test each)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from bridge.domain.state import State
from bridge.journal import Journal
from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.stage import Stage, stage
from bridge.sim.verdict import ANSWERED, INCOMING, calls_of
from bridge.sim.verdict import Expect as Mirror
from tests.eventually import eventually
from tests.integration.daemon_support import agents_rung, mirrored

SALES = "74951112233"


def state_of(s: Stage, channel: str) -> State | None:
    call = s.daemon.dispatcher.calls.get(channel)
    return call.state if call is not None else None


def agents_up(s: Stage) -> list[str]:
    return [c["name"] for c in s.pbx.channels() if c["name"].startswith("PJSIP/100")]


def agent_joined(s: Stage, caller: str) -> bool:
    """An agent's leg (not the caller) was added to the call's bridge."""
    return any(r["path"].endswith("/addChannel") and r["params"]["channel"] != caller for r in s.pbx.requests)


def recording_asked(s: Stage) -> bool:
    """The bridge asked the PBX to record a conversation."""
    return any(r["path"].endswith("/record") for r in s.pbx.requests)


def only_1001_answers(s: Stage, after: float = 0.1, talk: float | None = None) -> None:
    s.pbx.set_party("1001", Answer(after=after) if talk is None else Answer(after=after, talk=talk))
    for ext in ("1002", "1003", "1004"):
        s.pbx.set_party(ext, NeverAnswer())


async def test_a_call_whose_stasis_start_was_lost_with_the_connection_is_taken_after_the_reconnect(
    tmp_path: Path,
) -> None:
    async with stage(tmp_path) as s:
        only_1001_answers(s)
        s.pbx.go_silent(ari=True, ami=False)  # the socket stays open: Stasis() succeeds, its StasisStart is lost
        call = await s.pbx.place_inbound_call(SALES, "79990000201", hangup_after=12.0, hangup_after_answer=1.0)
        await s.pbx.drop_connections(ari=True, ami=False)
        s.pbx.wake()
        await asyncio.wait_for(call.ended(), 10)
        expect = Mirror("79990000201", INCOMING, 11, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11}))
        await mirrored(s, expect)


async def test_a_leg_still_queued_at_a_reconnect_rings_afterwards(tmp_path: Path) -> None:
    """The caller is answered, then ARI stops answering: RingAgent waits in the call's executor behind the
    bridge set-up. The resync must not take the leg it never originated for one that ended."""
    async with stage(tmp_path, ring_seconds=3.0) as s:  # the ring window outlasts the gap
        only_1001_answers(s, talk=1.0)
        recorded = s.pbx.record_request

        def stall_after_answer(kind: str, method: str, path: str, params: dict[str, Any], *via: str) -> None:
            recorded(kind, method, path, params, *via)
            if path.endswith("/answer"):
                s.pbx.go_silent(ari=True, ami=False)

        s.pbx.record_request = stall_after_answer  # type: ignore[method-assign,assignment]
        call = await s.pbx.place_inbound_call(SALES, "79990000202", hangup_after=12.0)
        await eventually(lambda: s.pbx.ari_silent and state_of(s, call.channel_id) is State.RINGING)
        s.pbx.record_request = recorded  # type: ignore[method-assign,assignment]
        await s.pbx.drop_connections(ari=True, ami=False)
        s.pbx.wake()
        await asyncio.wait_for(call.ended(), 10)
        expect = Mirror("79990000202", INCOMING, 11, ANSWERED, talk=1.0, recorded=None, shown_to=frozenset({11}))
        await mirrored(s, expect)
        assert agents_rung(s) == ["1001"], "the queued leg rang, once"


async def test_talk_that_ends_during_an_ari_gap_is_timed_by_the_hangup_ami_saw(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        only_1001_answers(s)
        call = await s.pbx.place_inbound_call(SALES, "79990000203", hangup_after=12.0, hangup_after_answer=1.0)
        await eventually(lambda: state_of(s, call.channel_id) is State.TALKING)
        await eventually(lambda: agent_joined(s, call.channel_id))  # the conversation is on before the gap
        await eventually(lambda: recording_asked(s))  # and its recording too (a loaded machine may lag it)
        s.pbx.go_silent(ari=True, ami=False)  # ARI hears nothing more; AMI still does
        await asyncio.wait_for(call.ended(), 5)
        await asyncio.sleep(2.5)  # the gap outlasts the conversation's end: counting to the resync adds it
        await s.pbx.drop_connections(ari=True, ami=False)
        s.pbx.wake()
        expect = Mirror("79990000203", INCOMING, 11, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11}))
        crm = await mirrored(s, expect)
        assert crm.duration <= 2, "the end is the hang-up AMI saw, not the resync 2.5 s later"


async def test_after_a_restart_a_caller_on_hold_is_re_routed_on_the_same_bitrix24_call(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        for ext in ("1001", "1002", "1003", "1004"):
            s.pbx.set_party(ext, NeverAnswer())
        call = await s.pbx.place_inbound_call(SALES, "79990000204", hangup_after=15.0, hangup_after_answer=1.0)
        await eventually(lambda: agents_up(s) != [])  # on hold (music on hold in its bridge), an agent ringing
        await eventually(lambda: len(calls_of(s.crm.state(), "79990000204")) == 1)
        await s.stop_daemon(grace=0.0)  # as after a kill: the call is open in the journal, nobody in charge
        s.pbx.set_party("1005", Answer(after=0.1))  # the client's responsible manager now (the first try made it)
        with capture_logs() as logs:
            await s.start_daemon()
            await asyncio.wait_for(call.ended(), 10)
            expect = Mirror("79990000204", INCOMING, 15, ANSWERED, talk=1.0, recorded=True,
                            shown_to=frozenset({11, 15}))  # fmt: skip
            crm = await mirrored(s, expect)
        found = {e["found"] for e in logs if e["event"] == "call.reconciled" and e["call_id"] == call.channel_id}
        assert found == {"waiting, re-routed"}, "on hold is not a conversation: the Announcer is not a person"
        (only,) = calls_of(s.crm.state(), "79990000204")  # one Bitrix24 call: the re-route went on with it
        assert only["finish_attempts"] == 1 and only["CALL_ID"] == crm.call_id
        assert not agents_up(s)


async def test_after_a_restart_an_adopted_conversation_ends_when_the_agent_hangs_up(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        only_1001_answers(s, talk=2.5)
        call = await s.pbx.place_inbound_call(SALES, "79990000205", hangup_after=20.0)
        await eventually(lambda: state_of(s, call.channel_id) is State.TALKING)
        talk_started = time.monotonic()
        await s.stop_daemon(grace=0.0)
        await s.start_daemon()
        await asyncio.wait_for(call.ended(), 8)  # the daemon hangs up the caller left alone, long before 20 s
        talked = time.monotonic() - talk_started
        assert talked < 5
        crm = await mirrored(s, Mirror("79990000205", INCOMING, 11, ANSWERED, talk=2.0, recorded=False,
                                       shown_to=frozenset({11})), 10)  # fmt: skip
        assert 1 <= crm.duration <= 3, "at most the talk the PBX saw, not until the caller's channel went"
        with Journal.open(s.settings.journal.path) as journal:
            assert journal.calls(status="open") == []
