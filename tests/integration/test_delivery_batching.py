"""Delivery spends as few requests as the rules allow, checks only what may already be in Bitrix24, and sends
nothing whose ``sent`` mark is not yet on disk. Against the simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import math
import socket
import zlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bridge.config import Bitrix24Settings
from bridge.config.reader import Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.telephony import Telephony
from bridge.delivery import Delivery
from bridge.domain.commands import CallType, CrmFinish, CrmHide, CrmRegister, CrmShow
from bridge.journal import Journal, store
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.eventually import eventually
from tests.integration.b24_proxy import B24Proxy

RATE, BURST = 20.0, 50
MSK = timezone(timedelta(hours=3))
STATISTIC_GET = "voximplant.statistic.get"


def settings_for(webhook: str) -> Bitrix24Settings:
    return Bitrix24Settings(
        webhook_url=Secret(webhook), rate=RATE, burst=BURST, register_timeout=30, request_timeout=3.0
    )


def make_delivery(journal: Journal, webhook: str) -> Delivery:
    settings = settings_for(webhook)
    client = Bitrix24Client(settings, retry_attempts=1)
    return Delivery(journal.aio, client, Telephony(client), settings, retry_base=0.05, retry_cap=0.4)


def journal_offline(journal: Journal, calls: int, *, doubtful_every: int = 0) -> set[str]:
    """Ended calls that went offline; every ``doubtful_every``-th one's register was handed over once before
    and its answer never came (so it may be in Bitrix24). Returns the doubtful legs."""
    started = datetime.now(MSK).replace(microsecond=0) - timedelta(hours=1)
    doubtful: set[str] = set()
    with journal.transaction():
        for i in range(calls):
            leg = f"off-{i}"
            phone = f"7916{zlib.crc32(leg.encode()) % 10_000_000:07d}"
            op = journal.append(CrmRegister(leg, 11, phone, CallType.INCOMING, "74950000001", started, True))
            journal.append(CrmFinish(leg, 11, 20 + i % 40, "200"))
            journal.go_offline(leg)
            if doubtful_every and i % doubtful_every == 0:
                journal.mark_sent([op])
                journal.mark_failed(op, "timeout", permanent=False)
                doubtful.add(leg)
    return doubtful


@pytest.fixture
async def sim() -> AsyncIterator[Bitrix24Simulator]:
    async with Bitrix24Simulator(rate=RATE, burst=BURST) as simulator:
        yield simulator


async def run_until_drained(delivery: Delivery, within: float = 20.0) -> None:
    task = asyncio.create_task(delivery.run())
    try:
        await eventually(lambda: Journal(delivery.journal).depth() == 0, timeout=within, message="journal not drained")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await delivery.client.close()


def mirrored_once(sim: Bitrix24Simulator) -> dict[str, dict[str, Any]]:
    calls = sim.state()["calls"]
    legs = [c["EXTERNAL_CALL_ID"] for c in calls]
    assert len(legs) == len(set(legs)), "a call was registered twice"
    assert all(c["status"] == "finished" and c["finish_attempts"] == 1 for c in calls)
    return {c["EXTERNAL_CALL_ID"]: c for c in calls}


async def test_a_backlog_goes_out_in_full_batches_with_the_checks_riding_along(
    sim: Bitrix24Simulator, tmp_path: Path
) -> None:
    calls = 150
    with Journal.open(tmp_path / "j.db") as journal:
        doubtful = journal_offline(journal, calls, doubtful_every=3)
        async with B24Proxy(sim) as proxy:
            await run_until_drained(make_delivery(journal, proxy.webhook_url))
        assert {c.state for c in journal.calls()} == {"done"}
    assert set(mirrored_once(sim)) == {f"off-{i}" for i in range(calls)}
    commands = [m for r in proxy.sends for _k, m, _p in r.commands()]
    checked = [p["FILTER[EXTERNAL_CALL_ID]"] for r in proxy.sends for _k, m, p in r.commands() if m == STATISTIC_GET]
    assert sorted(checked) == sorted(doubtful), "only calls that may be there already are checked, each once"
    least = math.ceil((2 * calls + len(doubtful)) / 50)
    assert len(commands) == 2 * calls + len(doubtful)
    assert max(len(r.commands()) for r in proxy.log) <= 50
    # the last calls' checks and the sends they clear cannot share a request: one more at the very end
    assert len(proxy.sends) <= least + 1, f"{len(proxy.log)} requests where {least} carry it all"
    assert sim.state()["counters"]["query_limit_exceeded"] == 0


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_refused_connection_leaves_the_call_certain_so_it_is_mirrored_without_a_check(
    sim: Bitrix24Simulator, tmp_path: Path
) -> None:
    with Journal.open(tmp_path / "j.db") as journal:
        journal_offline(journal, 3)
        nowhere = sim.webhook_url.replace(sim.url, f"http://127.0.0.1:{closed_port()}")
        delivery = make_delivery(journal, nowhere)
        assert await delivery.deliver_once() is True
        await delivery.client.close()
        ops = [op for leg in ("off-0", "off-1", "off-2") for op in journal.operations(leg)]
        assert {(op.state, op.attempts, op.tries) for op in ops} == {("pending", 0, 1)}, "tried, provably not sent"
        assert all("Connect" in op.last_error for op in ops)
        assert journal.retry_now() > 0
        async with B24Proxy(sim) as proxy:
            await run_until_drained(make_delivery(journal, proxy.webhook_url))
    assert set(mirrored_once(sim)) == {"off-0", "off-1", "off-2"}
    assert not [m for r in proxy.log for _k, m, _p in r.commands() if m == STATISTIC_GET]


async def test_calls_whose_marks_a_power_cut_took_are_found_in_bitrix24_not_sent_again(
    sim: Bitrix24Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender does not wait for the disk before a request: a power cut may take the ``sent`` and ``done``
    marks of calls that reached Bitrix24. After the machine restarts they are checked, found, and not resent."""
    path = tmp_path / "j.db"
    monkeypatch.setattr(store, "boot_id", lambda: "boot-before")
    with Journal.open(path) as journal:
        journal_offline(journal, 10)
    async with B24Proxy(sim) as proxy:
        delivery = make_delivery(Journal.open(path), proxy.webhook_url)
        await run_until_drained(delivery)  # everything reached Bitrix24 ...
        Journal(delivery.journal).wal.close()  # ... and the machine lost power: no clean close
        Journal(delivery.journal)._conn.close()
    with Journal.open(path) as journal, journal.transaction():  # ... taking the marks of five calls with it
        for i in range(5):
            for op in journal.operations(f"off-{i}"):
                journal._x("UPDATE operations SET state = 'pending', attempts = 0, tries = 0 WHERE id = ?", (op.id,))
            journal._refresh_call(f"off-{i}", journal._clock())
    monkeypatch.setattr(store, "boot_id", lambda: "boot-after")
    async with B24Proxy(sim) as proxy:
        with Journal.open(path) as journal:
            await run_until_drained(make_delivery(journal, proxy.webhook_url))
            notes = {op.note for i in range(5) for op in journal.operations(f"off-{i}")}
    assert len(mirrored_once(sim)) == 10, "no call registered or finished twice"
    checked = {p["FILTER[EXTERNAL_CALL_ID]"] for r in proxy.sends for _k, m, p in r.commands() if m == STATISTIC_GET}
    assert checked == {f"off-{i}" for i in range(5)}
    assert notes == {"already in Bitrix24 (voximplant.statistic.get)"}


async def test_a_card_move_rides_with_the_next_request_or_goes_alone_soon_after(
    sim: Bitrix24Simulator, tmp_path: Path
) -> None:
    """Showing the card to the next agent in a walk waits up to CARD_DEFER for a request that goes anyway (here
    another call's register), so a busy site spends one request a call less; alone, it still goes at once after."""
    started = datetime.now(MSK).replace(microsecond=0)
    with Journal.open(tmp_path / "j.db") as journal:
        async with B24Proxy(sim) as proxy:
            delivery = make_delivery(journal, proxy.webhook_url)
            task = asyncio.create_task(delivery.run())
            try:
                journal.append(CrmRegister("a", 11, "79161234567", CallType.INCOMING, "74950000001", started, True))
                delivery.notify()
                await eventually(lambda: journal.depth() == 0, timeout=10, message="register not sent")
                before = len(proxy.sends)
                journal.append(CrmHide("a", (11,)))
                journal.append(CrmShow("a", (12,)))
                delivery.notify_soon()
                journal.append(CrmRegister("b", 11, "79161234568", CallType.INCOMING, "74950000001", started, True))
                delivery.notify()
                await eventually(lambda: journal.depth() == 0, timeout=10, message="card moves not sent")
                rode = proxy.sends[before:]
                assert len(rode) == 1, "the card moves rode with the other call's register"
                assert sorted(m for _k, m, _p in rode[0].commands()) == [
                    "telephony.externalCall.hide", "telephony.externalCall.register", "telephony.externalCall.show"
                ]  # fmt: skip
                alone = len(proxy.sends)
                journal.append(CrmHide("b", (11,)))
                delivery.notify_soon()
                await eventually(lambda: journal.depth() == 0, timeout=10, message="a lone card move never went")
                assert len(proxy.sends) == alone + 1
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await delivery.client.close()
    assert sim.state()["counters"]["query_limit_exceeded"] == 0
