"""Agents on PJSIP phones, whose device state follows our own legs and races their channel events.

On a real PBX the phone we ring shows RINGING, then INUSE once it answers, and that INUSE reaches the bridge before
or after the leg's StasisStart (``reference/asterisk.md``). The simulator makes either order happen on purpose
(``set_device_state_order``); the agent who answers must talk either way, while an agent who takes *another*
call while ours rings is released at once. The key whole-call scenarios also run with Local-channel agents.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from bridge.domain.state import State
from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.stage import Stage, stage
from bridge.sim.verdict import ANSWERED, INCOMING, CrmCall, Expect, calls_of, crm_call
from tests.eventually import eventually
from tests.integration.daemon_support import agents_rung, mirrored

SALES = "74951112233"  # queue "sales": 1001, 1002, 1003, 1004 in order, two rings each
SUPPORT_EVERYBODY = "74951112255"  # queue "support": 1001, 1002, 1003, 1006 all at once
SUPPORT_IVR = "74951112244"  # menu "main": key 1 -> queue "sales"

TEMPLATES = pytest.mark.parametrize("local_agents", [False, True], ids=["pjsip", "local"])


def state_of(s: Stage, channel: str) -> State | None:
    call = s.daemon.dispatcher.calls.get(channel)
    return call.state if call is not None else None


def finished(s: Stage, phone: str) -> CrmCall:
    state = s.crm.state()
    (call,) = calls_of(state, phone)
    found = crm_call(state, call)
    assert found.finished and not found.left_shown
    return found


def releases(logs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["ext"], e["reason"]) for e in logs if e["event"] == "leg.released"]


async def test_an_answer_whose_inuse_comes_before_stasis_start_talks(tmp_path: Path) -> None:
    async with stage(tmp_path, ring_seconds=1.0) as s:
        s.pbx.set_device_state_order("device-first", lag=0.3)
        s.pbx.set_party("1001", Answer(after=0.2))
        book = s.daemon.dispatcher.availability
        with capture_logs() as logs:
            call = await s.pbx.place_inbound_call(SALES, "79990000501", hangup_after_answer=1.0)
            # the bridge holds INUSE for 1001 while its leg has not entered Stasis: the order this test is about
            await eventually(
                lambda: book.devices.get("1001") == "INUSE" and state_of(s, call.channel_id) is State.RINGING
            )
            await eventually(lambda: state_of(s, call.channel_id) is State.TALKING)
            await asyncio.wait_for(call.ended(), 20)
        await mirrored(
            s, Expect("79990000501", INCOMING, 11, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11}))
        )
        assert agents_rung(s) == ["1001"]
        assert ("1001", "busy elsewhere") not in releases(logs)


async def test_an_answer_whose_inuse_comes_after_stasis_start_talks(tmp_path: Path) -> None:
    async with stage(tmp_path, ring_seconds=1.0) as s:
        s.pbx.set_device_state_order("device-last", lag=0.3)
        s.pbx.set_party("1001", Answer(after=0.2))
        book = s.daemon.dispatcher.availability
        call = await s.pbx.place_inbound_call(SALES, "79990000502", hangup_after_answer=1.0)
        await eventually(lambda: state_of(s, call.channel_id) is State.TALKING and book.devices.get("1001") != "INUSE")
        await eventually(lambda: book.devices.get("1001") == "INUSE")
        await asyncio.wait_for(call.ended(), 20)
        await mirrored(
            s, Expect("79990000502", INCOMING, 11, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11}))
        )
        assert agents_rung(s) == ["1001"]


async def test_two_calls_ringing_one_agent_the_answered_one_talks_the_other_moves_on(tmp_path: Path) -> None:
    """Both callers ring 1001 (RINGING from two of our legs); 1001 picks up the first: RINGINUSE, and nothing says
    which of our legs is up until its StasisStart. The answered call must talk; the other moves on to 1002."""
    async with stage(tmp_path, ring_seconds=2.0) as s:
        s.pbx.set_device_state_order("device-first", lag=0.1)
        s.pbx.set_party("1001", NeverAnswer())
        s.pbx.set_party("1002", Answer(after=0.2))
        first = await s.pbx.place_inbound_call(SALES, "79990000503", hangup_after=6.0)
        await eventually(lambda: agents_rung(s) == ["1001"])
        second = await s.pbx.place_inbound_call(SALES, "79990000504", hangup_after=6.0)
        await eventually(lambda: agents_rung(s) == ["1001", "1001"])
        phone = sorted((c for c in s.pbx.pbx.channels.values() if c.device == "PJSIP/1001"), key=lambda c: c.created_at)
        await eventually(lambda: s.daemon.dispatcher.availability.devices.get("1001") == "RINGING")
        with capture_logs() as logs:
            s.pbx.pick_up(phone[0].id)
            await eventually(lambda: state_of(s, first.channel_id) is State.TALKING)
            await eventually(lambda: agents_rung(s) == ["1001", "1001", "1002"], timeout=3)
            await eventually(lambda: state_of(s, second.channel_id) is State.TALKING)
        assert releases(logs) == [("1001", "busy elsewhere")], "only the second call's leg on 1001 was released"
        await asyncio.wait_for(asyncio.gather(first.ended(), second.ended()), 20)
        first_crm, second_crm = await eventually(lambda: (finished(s, "79990000503"), finished(s, "79990000504")))
        assert (first_crm.user, first_crm.status, first_crm.shown_to) == (11, ANSWERED, {11})
        assert (second_crm.user, second_crm.status, second_crm.shown_to) == (12, ANSWERED, {11, 12})
        assert first_crm.duration >= 4 and second_crm.duration >= 3


async def test_an_agent_who_takes_another_call_while_ours_rings_is_released_at_once(tmp_path: Path) -> None:
    async with stage(tmp_path, ring_seconds=5.0) as s:  # 1001's window: two rings, 10 s
        s.pbx.set_party("1001", NeverAnswer())
        s.pbx.set_party("1002", Answer(after=0.2))
        with capture_logs() as logs:
            call = await s.pbx.place_inbound_call(SALES, "79990000505", hangup_after_answer=1.0)
            await eventually(
                lambda: agents_rung(s) == ["1001"] and s.daemon.dispatcher.availability.devices.get("1001") == "RINGING"
            )
            picked_up = time.monotonic()
            await s.pbx.place_outbound_call("1001", "79260000505", answer_after=0.1, talk=20.0, device="PJSIP/1001")
            await eventually(lambda: agents_rung(s) == ["1001", "1002"], timeout=8)
            moved_on = time.monotonic() - picked_up
            await asyncio.wait_for(call.ended(), 20)
        assert moved_on < 4.0, f"1001 rang on for {moved_on:.1f} s after taking another call (window 10 s)"
        assert ("1001", "busy elsewhere") in releases(logs)
        await mirrored(
            s, Expect("79990000505", INCOMING, 12, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11, 12}))
        )


@TEMPLATES
async def test_first_agent_answers(tmp_path: Path, local_agents: bool) -> None:
    async with stage(tmp_path, local_agents=local_agents) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(SALES, "79990000511", hangup_after_answer=1.0)
        await asyncio.wait_for(call.ended(), 20)
        await mirrored(
            s, Expect("79990000511", INCOMING, 11, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11}))
        )


@TEMPLATES
async def test_walk_past_a_silent_and_an_unregistered_agent(tmp_path: Path, local_agents: bool) -> None:
    async with stage(tmp_path, local_agents=local_agents) as s:
        s.pbx.set_party("1001", NeverAnswer())
        s.pbx.set_endpoint_state("PJSIP/1002", "offline")  # the phone is not registered: UNAVAILABLE
        s.pbx.set_party("1003", Answer(after=0.2))
        await eventually(lambda: s.daemon.dispatcher.availability.devices.get("1002") == "UNAVAILABLE")
        with capture_logs() as logs:
            call = await s.pbx.place_inbound_call(SALES, "79990000512", hangup_after_answer=1.0)
            await asyncio.wait_for(call.ended(), 20)
        await mirrored(
            s, Expect("79990000512", INCOMING, 13, ANSWERED, talk=1.0, recorded=True, shown_to=frozenset({11, 13}))
        )
        assert agents_rung(s) == ["1001", "1003"], "an unregistered phone is not even rung"
        assert ("1001", "timeout") in releases(logs)


@TEMPLATES
async def test_everybody_rings_and_the_others_are_released_when_one_answers(tmp_path: Path, local_agents: bool) -> None:
    async with stage(tmp_path, ring_seconds=1.0, local_agents=local_agents) as s:
        for ext in ("1001", "1002", "1006"):
            s.pbx.set_party(ext, NeverAnswer())
        s.pbx.set_party("1003", Answer(after=0.4))
        with capture_logs() as logs:
            call = await s.pbx.place_inbound_call(SUPPORT_EVERYBODY, "79990000513", hangup_after_answer=1.0)
            await asyncio.wait_for(call.ended(), 20)
        await mirrored(
            s,
            Expect("79990000513", INCOMING, 13, ANSWERED, talk=1.0, recorded=True,
                   shown_to=frozenset({11, 12, 13, 16})),
        )  # fmt: skip
        released = releases(logs)
        assert {ext for ext, reason in released if reason == "answered elsewhere"} == {"1001", "1002", "1006"}
        assert not [r for r in released if r[1] == "busy elsewhere"]


async def test_an_agent_busy_since_the_caller_entered_the_menu_is_skipped_when_the_walk_starts(tmp_path: Path) -> None:
    """A call in the IVR only records device news (the dispatcher notes them without stepping it); the walk its key
    starts must still see them: 1001 took another call meanwhile, so 1002 rings first."""
    async with stage(tmp_path, ring_seconds=2.0) as s:
        s.pbx.set_party("1002", Answer(after=0.2))
        call = await s.pbx.place_inbound_call(SUPPORT_IVR, "79990000506", dtmf=[(1.2, "1")], hangup_after=6.0)
        await eventually(lambda: state_of(s, call.channel_id) in (State.MENU_PROMPT, State.MENU_WAIT))
        await s.pbx.place_outbound_call("1001", "79260000506", answer_after=0.1, talk=20.0, device="PJSIP/1001")
        await eventually(lambda: s.daemon.dispatcher.availability.devices.get("1001") == "INUSE")
        assert state_of(s, call.channel_id) in (State.MENU_PROMPT, State.MENU_WAIT), "the key came too early"
        await eventually(lambda: state_of(s, call.channel_id) is State.TALKING, timeout=8)
        assert agents_rung(s) == ["1002"]
        await asyncio.wait_for(call.ended(), 20)
