"""The daemon's life around the calls: a Bitrix24 outage, SIGTERM while calls talk, a restart with calls open in
the journal, and what ``/healthz`` and ``/metrics`` say meanwhile."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from bridge.daemon import Daemon
from bridge.domain.scheme import Availability
from bridge.domain.state import State
from bridge.journal import Journal
from bridge.journal.lock import JournalBusy
from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.stage import Stage, stage
from bridge.sim.verdict import ANSWERED, INCOMING, MISSED, OUTGOING, Expect, calls_of
from tests.eventually import eventually
from tests.integration.daemon_support import mirrored

SALES = "74951112233"
NIGHT = "74951112266"


def talking(s: Stage) -> bool:
    return any(call.state is State.TALKING for call in s.daemon.dispatcher.calls.values())


def journal_depth(s: Stage) -> int:
    with Journal.open(s.settings.journal.path) as journal:
        return journal.depth()


async def test_calls_during_a_bitrix24_outage_are_mirrored_after_it(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.crm.set_fault(outage_seconds=2.5)
        outage_ends = time.monotonic() + 2.5
        s.pbx.set_party("1001", Answer(after=0.2))
        placed = time.time()
        answered = await s.pbx.place_inbound_call(SALES, "79990000101", hangup_after_answer=1.0)
        voicemail = await s.pbx.place_inbound_call(NIGHT, "79990000102", hangup_after=1.5)
        await asyncio.wait_for(asyncio.gather(answered.ended(), voicemail.ended()), 20)
        assert calls_of(s.crm.state(), "79990000101") == [], "nothing can reach Bitrix24 during the outage"
        await asyncio.sleep(outage_ends - time.monotonic())  # the outage lasts its time whatever the daemon does
        # delivery retries (a statistics check first) every 2 s and the portal watch probes after long back-offs
        await mirrored(s, Expect("79990000101", INCOMING, 11, ANSWERED, talk=1.0, recorded=True, offline=True), 6)
        await mirrored(s, Expect("79990000102", INCOMING, 15, MISSED, recorded=True, task_for=15, offline=True), 6)
        for phone in ("79990000101", "79990000102"):
            (crm,) = calls_of(s.crm.state(), phone)
            started = datetime.fromisoformat(crm["CALL_START_DATE"]).timestamp()
            assert abs(started - placed) <= 1.5, "the call must carry its real start, not the replay's"
            assert crm["finish_attempts"] == 1
        assert journal_depth(s) == 0


async def test_sigterm_while_a_call_talks_mirrors_it_within_the_grace_and_refuses_new_calls(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(SALES, "79990000103", hangup_after_answer=1.5)
        await eventually(lambda: talking(s))
        s.daemon.request_stop()
        await eventually(lambda: not s.daemon.dispatcher.accepting)
        late = await s.pbx.place_inbound_call(SALES, "79990000104", hangup_after=5.0)
        await asyncio.wait_for(late.ended(), 5)  # hung up by the stopping daemon, not by the caller
        clicked = await s.crm.click_to_call(12, "79990000109")  # Bitrix24 opened a card: it must be closed
        assert await s.stop_daemon() == 0
        assert call.done, "the daemon waited for the call in progress"
        expect = Expect("79990000103", INCOMING, 11, ANSWERED, talk=1.5, recorded=True, shown_to=frozenset({11}))
        await mirrored(s, expect, timeout=0.5)  # already there: delivered before the daemon exited
        assert calls_of(s.crm.state(), "79990000104") == []
        refused = Expect("79990000109", OUTGOING, 12, "480", shown_to=frozenset({12}), crm_call_id=clicked)
        await mirrored(s, refused, timeout=0.5)
        assert not [r for r in s.pbx.requests if r["params"].get("endpoint") == "PJSIP/1002"]
        assert journal_depth(s) == 0


async def test_a_call_outlasting_the_grace_is_finished_as_reconciled_after_the_restart(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(SALES, "79990000105", hangup_after_answer=1.0)
        await eventually(lambda: talking(s))
        await eventually(lambda: [a["action"] for a in s.crm.state()["cards"].get("11", [])] == ["show"])
        assert await s.stop_daemon(grace=0.0) == 0
        with Journal.open(s.settings.journal.path) as journal:
            assert [row.phone for row in journal.calls(status="open")] == ["79990000105"]
        await asyncio.wait_for(call.ended(), 5)  # the call ends while no daemon runs
        with capture_logs() as logs:
            await s.start_daemon()
            # gone: finished with what the journal knows (its registered owner, no talk seen), nobody's card left open
            await mirrored(s, Expect("79990000105", INCOMING, 15, MISSED, recorded=False, shown_to=frozenset({11})))
        reconciled = [e for e in logs if e["event"] == "call.reconciled"]
        assert [(e["call_id"], e["found"]) for e in reconciled] == [
            (call.channel_id, "ended"),
            (f"{call.channel_id}-leg1", "orphan leg, hung up"),  # the agent left talking to nobody
        ]
        assert reconciled[0]["line"] == SALES, "a journaled call's reconciliation names its line"
        await eventually(lambda: not [c for c in s.pbx.channels() if c["name"].startswith("PJSIP/1001-")])


async def test_a_call_still_up_after_a_restart_is_adopted_until_it_ends(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        call = await s.pbx.place_inbound_call(SALES, "79990000106", hangup_after_answer=4.0)
        await eventually(lambda: talking(s))
        await asyncio.sleep(1.5)  # the scenario: they have talked a while when the daemon stops
        await s.stop_daemon(grace=0.0)
        await s.start_daemon()
        assert not call.done
        await asyncio.wait_for(call.ended(), 5)
        # the talk counts from the answer the PBX kept (B24_ANSWERED on the agent's leg), not from the restart,
        # for the employee whose card was open: the talker
        crm = await mirrored(
            s, Expect("79990000106", INCOMING, 11, ANSWERED, talk=4.0, recorded=False, shown_to=frozenset({11})), 10
        )
        assert 3 <= crm.duration <= 5
        # the agent, left alone in the bridge (bearing the caller's linkedid), is hung up
        await eventually(lambda: not [c for c in s.pbx.channels() if c["name"].startswith("PJSIP/1001-")])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_real_signal_stops_the_daemon_with_status_0(tmp_path: Path, signum: int) -> None:
    async with stage(tmp_path) as s:
        await s.stop_daemon()
        daemon = Daemon(s.settings, timing=s.timing)
        serving = asyncio.create_task(daemon.serve())  # with its SIGTERM/SIGINT handlers, as `b24-bridge run`
        await eventually(lambda: daemon.started.is_set() and daemon.ari.connected)
        os.kill(os.getpid(), signum)
        assert await asyncio.wait_for(serving, 10) == 0


async def test_a_second_daemon_on_the_same_journal_refuses_to_start(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        with pytest.raises(JournalBusy, match="in use by b24-bridge run"):
            await Daemon(s.settings, timing=s.timing).serve(install_signals=False)
        assert s.daemon.alive(), "the running daemon is untouched"


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body


async def test_healthz_is_200_when_all_is_well_and_503_with_the_reason_when_ami_goes_silent(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        url = f"http://127.0.0.1:{s.daemon.http_port}/healthz"
        status, body = await get(url)
        assert status == 200 and body["ok"] is True
        assert set(body["components"]) == {"ari", "ami", "bitrix24", "journal"}
        s.pbx.go_silent(ami=True)

        async def unhealthy() -> dict[str, Any]:
            status, body = await get(url)
            assert status == 503, body
            return dict(body)

        body = await eventually(unhealthy, timeout=10)
        assert body["reasons"] == ["ami: not connected"] and body["components"]["ari"]["ok"] is True
        assert s.daemon.alive(), "a silent PBX is no reason for the systemd watchdog to restart the daemon"
        s.pbx.wake()
        await eventually(lambda: s.daemon.ami.connected, timeout=10)
        assert (await get(url))[0] == 200


async def test_metrics_count_calls_by_outcome_and_what_went_to_bitrix24(tmp_path: Path) -> None:
    async with stage(tmp_path) as s:
        s.pbx.set_party("1001", Answer(after=0.1))
        answered = await s.pbx.place_inbound_call(SALES, "79990000107", hangup_after_answer=0.5)
        await asyncio.wait_for(answered.ended(), 10)
        await eventually(lambda: s.daemon.dispatcher.availability.of("1001") is Availability.AVAILABLE)
        s.pbx.set_party("1001", NeverAnswer())
        missed = await s.pbx.place_inbound_call(SALES, "79990000108", hangup_after=0.3)
        await asyncio.wait_for(missed.ended(), 10)
        await mirrored(
            s, Expect("79990000107", INCOMING, 11, ANSWERED, talk=0.5, recorded=True, shown_to=frozenset({11}))
        )
        await mirrored(s, Expect("79990000108", INCOMING, 15, MISSED, shown_to=frozenset({11}), task_for=15))
        await s.pbx.drop_connections(ari=False, ami=True)
        await eventually(
            lambda: b'b24bridge_pbx_reconnects_total{link="ami"} 1.0' in s.daemon.metrics.render(), timeout=10
        )
        _, text = await get(f"http://127.0.0.1:{s.daemon.http_port}/metrics")
        metrics = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
        assert metrics['b24bridge_calls_total{status="200"}'] == "1.0"
        assert metrics['b24bridge_calls_total{status="304"}'] == "1.0"
        assert metrics["b24bridge_active_calls"] == "0.0"
        assert metrics["b24bridge_journal_depth"] == "0.0"
        assert metrics["b24bridge_journal_oldest_pending_seconds"] == "0.0"
        assert metrics['b24bridge_pbx_reconnects_total{link="ami"}'] == "1.0"
        ours = [r for r in s.crm.state()["requests"] if r["method"] != "event.bind"]  # the stage's set-up
        assert float(metrics["b24bridge_crm_http_requests"]) == len(ours) > 0
        assert float(metrics["b24bridge_crm_http_commands"]) >= 4  # register, show, finish, attach at least
        assert metrics["b24bridge_crm_query_limit_exceeded"] == "0.0"
        assert 'b24bridge_crm_commands_total{method="telephony.externalCall.finish"}' in metrics
        assert float(metrics["b24bridge_crm_bucket_level"]) >= 0
        assert float(metrics["b24bridge_event_lag_seconds_count"]) > 5  # every PBX event, lookup answer and timer
