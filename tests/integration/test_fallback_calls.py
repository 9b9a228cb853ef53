"""Never drop a caller: while the daemon is stopped the generated fallback dialplan routes the calls, and once the
daemon is back each of them reaches Bitrix24 exactly once, with who talked, for how long, and the recording."""

from __future__ import annotations

import asyncio
from pathlib import Path

from structlog.testing import capture_logs

from bridge.dialplan.trace import FAMILY
from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.stage import Stage, stage
from bridge.sim.verdict import ANSWERED, INCOMING, MISSED, Expect, calls_of
from tests.eventually import eventually
from tests.integration.daemon_support import mirrored

SALES = "74951112233"  # demo: queue sales (1001-1004 at once in the fallback), then a message for 1005
ANSWERED_BY_1002, GAVE_UP, LEFT_MESSAGE = "79990000301", "79990000302", "79990000303"


def traces(s: Stage) -> dict[str, str]:
    return {k: v for k, v in s.pbx.astdb.items() if k.startswith(f"/{FAMILY}/")}


def ended_traces(s: Stage) -> int:
    return len([k for k in traces(s) if k.endswith("/end")])


async def calls_while_stopped(s: Stage) -> None:
    """Three calls to the sales line with no daemon: answered by 1002, given up while ringing, a message."""
    s.pbx.load_fallback(s.settings)
    for ext in ("1001", "1002", "1003", "1004"):
        s.pbx.set_party(ext, NeverAnswer())
    await s.stop_daemon()
    s.pbx.set_party("1002", Answer(after=0.2))
    talked = await s.pbx.place_inbound_call(SALES, ANSWERED_BY_1002, hangup_after_answer=1.5)
    await asyncio.wait_for(talked.ended(), 10)
    s.pbx.set_party("1002", NeverAnswer())
    gave_up = await s.pbx.place_inbound_call(SALES, GAVE_UP, hangup_after=0.5)
    message = await s.pbx.place_inbound_call(SALES, LEFT_MESSAGE, hangup_after=3.0)
    await asyncio.wait_for(asyncio.gather(gave_up.ended(), message.ended()), 10)
    await eventually(lambda: ended_traces(s) == 3)
    assert s.crm.state()["calls"] == [], "nothing reached Bitrix24 while the daemon was stopped"


EXPECTED = [
    Expect(ANSWERED_BY_1002, INCOMING, 12, ANSWERED, talk=1.5, recorded=True, offline=True),
    Expect(GAVE_UP, INCOMING, 15, MISSED, offline=True, task_for=15),  # the line's owner, with the line's task
    Expect(LEFT_MESSAGE, INCOMING, 15, MISSED, recorded=True, offline=True, task_for=15),  # the message attached
]


async def test_calls_the_fallback_handled_reach_bitrix24_once_the_daemon_is_back(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        await calls_while_stopped(s)
        with capture_logs() as logs:
            await s.start_daemon()
            for expect in EXPECTED:
                await mirrored(s, expect)
            await eventually(lambda: traces(s) == {}, message="journaled traces are deleted from AstDB")
        assert sorted(e["status"] for e in logs if e["event"] == "fallback.mirrored") == ["200", "304", "304"]
        for expect in EXPECTED:
            assert len(calls_of(s.crm.state(), expect.phone)) == 1


async def test_a_restart_between_journaling_and_deleting_mirrors_nothing_twice(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        await calls_while_stopped(s)
        left = traces(s)
        await s.start_daemon()
        for expect in EXPECTED:
            await mirrored(s, expect)
        await eventually(lambda: traces(s) == {})
        await s.stop_daemon()
        s.pbx.astdb.update(left)  # as if the daemon had died after journaling, before the deletes
        with capture_logs() as logs:
            await s.start_daemon()
            await eventually(lambda: traces(s) == {}, message="the traces are deleted again")
        assert not [e for e in logs if e["event"] == "fallback.mirrored"]
        for expect in EXPECTED:
            await mirrored(s, expect)
            assert len(calls_of(s.crm.state(), expect.phone)) == 1


async def test_a_trace_that_cannot_be_read_is_reported_and_left_alone(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        await s.stop_daemon()
        s.pbx.astdb.update({
            f"/{FAMILY}/1700000000.7/line": SALES,
            f"/{FAMILY}/1700000000.7/start": "yesterday",
            f"/{FAMILY}/1700000000.7/end": "1700000100",
            f"/{FAMILY}/1700000000.8/line": "74950000001",  # no such line
            f"/{FAMILY}/1700000000.8/start": "1700000000",
            f"/{FAMILY}/1700000000.8/end": "1700000100",
        })  # fmt: skip
        with capture_logs() as logs:
            await s.start_daemon()
            await eventually(lambda: {e["event"] for e in logs} >= {"fallback.bad_trace", "fallback.not_mirrored"})
        assert len(traces(s)) == 6 and s.crm.state()["calls"] == []


async def test_a_call_whose_end_never_came_is_mirrored_as_missed_once_its_channel_is_gone(tmp_path: Path) -> None:
    """Asterisk stopped in the middle of a fallback call: its trace has no end and no channel has its Uniqueid."""
    async with stage(tmp_path) as s:
        await s.stop_daemon()
        s.pbx.astdb.update({
            f"/{FAMILY}/1700000000.9/line": SALES,
            f"/{FAMILY}/1700000000.9/caller": "79990000309",
            f"/{FAMILY}/1700000000.9/start": "1700000000",
        })  # fmt: skip
        with capture_logs() as logs:
            await s.start_daemon()
            await mirrored(s, Expect("79990000309", INCOMING, 15, MISSED, offline=True, task_for=15))
            await eventually(lambda: traces(s) == {})
        assert [e["uniqueid"] for e in logs if e["event"] == "fallback.incomplete"] == ["1700000000.9"]
