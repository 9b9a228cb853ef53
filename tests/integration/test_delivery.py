"""Delivery from the journal to the Bitrix24 simulator over real HTTP on 127.0.0.1.

The bucket is scaled but keeps the portal's proportions (20/s and 50 here, on both sides), so tests are fast.
"""

from __future__ import annotations

import asyncio
import base64
import math
import random
import sqlite3
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from bridge.config import AsteriskSettings, Bitrix24Settings, Secret
from bridge.crm.builders import FINISH
from bridge.crm.client import Bitrix24Client
from bridge.crm.errors import CallNotFoundError
from bridge.crm.pacing import fill_bucket
from bridge.crm.telephony import Telephony
from bridge.delivery import Delivery, recording_loader
from bridge.delivery.hooks import DeliveryObserver
from bridge.delivery.settle import Settler
from bridge.domain.commands import (
    CallType,
    CrmAttachRecord,
    CrmCommand,
    CrmFinish,
    CrmHide,
    CrmMissedTask,
    CrmNotify,
    CrmRegister,
    CrmShow,
)
from bridge.journal import Journal
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.eventually import eventually
from tests.integration.b24_proxy import B24Proxy, Forwarded

RATE, BURST = 20.0, 50
MSK = timezone(timedelta(hours=3))
AGENTS = (11, 12, 13, 15, 16)


def b24_settings(webhook: str, register_timeout: float = 0.5) -> Bitrix24Settings:
    return Bitrix24Settings(
        webhook_url=Secret(webhook), rate=RATE, burst=BURST, register_timeout=register_timeout, request_timeout=3.0
    )


@dataclass
class Stack:
    sim: Bitrix24Simulator
    journal: Journal
    client: Bitrix24Client
    delivery: Delivery
    task: asyncio.Task[None] | None = None

    def append(self, cmd: CrmCommand) -> None:
        self.journal.append(cmd)
        self.delivery.notify()

    def start(self) -> None:
        self.task = asyncio.create_task(self.delivery.run())

    async def drained(self, within: float = 10.0) -> None:
        await eventually(lambda: self.journal.depth() == 0, timeout=within, message="journal not drained")

    def sim_calls(self) -> dict[str, dict[str, Any]]:
        calls = self.sim.state()["calls"]
        legs = [c["EXTERNAL_CALL_ID"] for c in calls]
        assert len(legs) == len(set(legs)), "an EXTERNAL_CALL_ID was registered twice"
        return {c["EXTERNAL_CALL_ID"]: c for c in calls}


class CountingObserver(DeliveryObserver):
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.offline_legs: list[str] = []

    def batch_sent(self, commands: int, seconds: float, ok: bool) -> None:
        self.batches.append(commands)

    def offline(self, crm_leg: str) -> None:
        self.offline_legs.append(crm_leg)


Loader = Callable[[str], Awaitable[bytes | None]]


@pytest.fixture
async def sim() -> AsyncIterator[Bitrix24Simulator]:
    async with Bitrix24Simulator(rate=RATE, burst=BURST) as simulator:
        yield simulator


@pytest.fixture
async def make_stack(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    stacks: list[Stack] = []

    async def make(
        sim: Bitrix24Simulator,
        *,
        webhook: str | None = None,
        register_timeout: float = 0.5,
        loader: Loader | None = None,
        observer: DeliveryObserver | None = None,
        journal_path: Path | None = None,
    ) -> Stack:
        settings = b24_settings(webhook or sim.webhook_url, register_timeout)
        journal = Journal.open(journal_path or tmp_path / f"journal{len(stacks)}.db")
        client = Bitrix24Client(settings, retry_attempts=1)
        delivery = Delivery(
            journal.aio, client, Telephony(client), settings, recording_loader=loader, observer=observer,
            retry_base=0.05, retry_cap=0.4,
        )  # fmt: skip
        stack = Stack(sim, journal, client, delivery)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        if stack.task is not None:
            stack.task.cancel()
            await asyncio.gather(stack.task, return_exceptions=True)
        await stack.client.close()
        stack.journal.close()


def now_msk() -> datetime:
    return datetime.now(MSK).replace(microsecond=0)


def register(leg: str, user: int = 11, show: bool = True, start: datetime | None = None) -> CrmRegister:
    number = f"7916{zlib.crc32(leg.encode()) % 10_000_000:07d}"
    return CrmRegister(leg, user, number, CallType.INCOMING, "74950000001", start or now_msk(), show)


def requests_503(sim: Bitrix24Simulator) -> int:
    return sum(1 for r in sim.state()["requests"] if r["http_status"] == 503)


# --- batching and order ------------------------------------------------------------------------------


async def test_many_calls_go_out_in_few_batches_and_never_overflow_the_bucket(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    observer = CountingObserver()
    stack = await make_stack(sim, observer=observer, register_timeout=30)
    calls = 150
    for i in range(calls):
        stack.append(register(f"bulk-{i}"))
        stack.append(CrmHide(f"bulk-{i}", (11,)))
        stack.append(CrmFinish(f"bulk-{i}", 11, 10 + i % 7, "200"))
    commands = calls * 3
    stack.start()
    await stack.drained()

    state = sim.state()
    batches = [r for r in state["requests"] if r["method"] == "batch"]
    assert len(state["requests"]) <= math.ceil(commands / 50) + 3
    assert sum(r["commands"] for r in batches) == commands
    assert max(observer.batches) <= 50
    assert requests_503(sim) == 0 and state["counters"]["query_limit_exceeded"] == 0
    mirrored = stack.sim_calls()
    assert len(mirrored) == calls
    assert all(c["status"] == "finished" and c["finish_attempts"] == 1 for c in mirrored.values())
    assert {c.state for c in stack.journal.calls()} == {"done"}


async def test_each_call_keeps_its_order_while_calls_stream_in(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    async with B24Proxy(sim) as proxy:
        stack = await make_stack(sim, webhook=proxy.webhook_url, register_timeout=30)
        stack.start()
        rng = random.Random(7)
        legs = [f"walk-{i}" for i in range(40)]
        first, second = {}, {}
        for leg in legs:
            first[leg], second[leg] = rng.sample(AGENTS, 2)
        steps: list[Callable[[str], CrmCommand]] = [
            lambda leg: register(leg, user=first[leg], show=False),
            lambda leg: CrmShow(leg, (first[leg],)),
            lambda leg: CrmHide(leg, (first[leg],)),
            lambda leg: CrmShow(leg, (second[leg],)),
            lambda leg: CrmFinish(leg, second[leg], 30, "200"),
        ]
        progress = dict.fromkeys(legs, 0)
        while any(n < len(steps) for n in progress.values()):
            leg = rng.choice([leg for leg, n in progress.items() if n < len(steps)])
            stack.append(steps[progress[leg]](leg))
            progress[leg] += 1
            await asyncio.sleep(rng.uniform(0, 0.004))  # the PBX's timeline: events a few ms apart
        await stack.drained()

    seq_of = {
        f"op{op.id}": (leg, op.seq) for leg in legs for op in stack.journal.operations(leg)
    }  # the key of every op in a batch
    sent_order: dict[str, list[int]] = {leg: [] for leg in legs}
    for request in proxy.log:
        for key, _method, _params in request.commands():
            if key in seq_of:
                leg, seq = seq_of[key]
                sent_order[leg].append(seq)
    for leg, seqs in sent_order.items():
        assert {1, 3, 5} <= set(seqs), f"{leg}: register, hide and finish must all have gone out: {seqs}"
        assert seqs == sorted(seqs), f"{leg} went out of order: {seqs}"
    mirrored = stack.sim_calls()
    cards = sim.state()["cards"]
    for leg in legs:
        call = mirrored[leg]
        assert call["finish"]["USER_ID"] == second[leg] and call["finish_attempts"] == 1
        for user in (first[leg], second[leg]):
            actions = [c["action"] for c in cards.get(str(user), []) if c["CALL_ID"] == call["CALL_ID"]]
            assert actions in (["show", "hide"], ["hide"]), f"{leg}: user {user} saw {actions}"
    assert requests_503(sim) == 0


# --- outages and offline mirroring -------------------------------------------------------------------


async def outage_scenario(sim: Bitrix24Simulator, stack: Stack, outage: float, calls: int) -> None:
    """One call goes through before the outage, ends during it; ``calls`` more start and end during it."""
    stack.start()
    stack.append(register("early", user=11))
    await eventually(lambda: stack.journal.calls(crm_leg="early")[0].call_id, message="early call registered")
    sim.set_fault(outage_seconds=outage)
    stack.append(CrmFinish("early", 11, 25, "200"))
    rng = random.Random(3)
    expected: dict[str, tuple[datetime, int, int, str]] = {}
    with capture_logs() as logs:
        for i in range(calls):
            leg = f"out-{i}"
            start = now_msk() - timedelta(seconds=rng.randint(5, 300))
            ringing, talker = rng.sample(AGENTS, 2)
            duration, status = rng.choice([(0, "304"), (rng.randint(1, 500), "200"), (0, "486")])
            stack.append(register(leg, user=ringing, start=start))
            stack.append(CrmShow(leg, (ringing,)))
            stack.append(CrmHide(leg, (ringing,)))
            stack.append(CrmFinish(leg, talker if duration else ringing, duration, status))
            expected[leg] = (start, talker if duration else ringing, duration, status)
        await eventually(
            lambda: len(stack.sim_calls()) == calls + 1 and stack.journal.depth() == 0,
            timeout=outage + 15,
            message="calls mirrored after the outage",
        )
    mirrored = stack.sim_calls()
    assert mirrored["early"]["finish"]["DURATION"] == 25 and mirrored["early"]["finish_attempts"] == 1
    for leg, (start, user, duration, status) in expected.items():
        call = mirrored[leg]
        assert call["SHOW"] is False, f"{leg} was mirrored with a card"
        assert datetime.fromisoformat(call["CALL_START_DATE"]) == start
        assert (call["finish"]["USER_ID"], call["finish"]["DURATION"], call["finish"]["STATUS_CODE"]) == (
            user, duration, status)  # fmt: skip
        assert call["finish_attempts"] == 1
        for user_cards in sim.state()["cards"].values():
            assert not [c for c in user_cards if c["CALL_ID"] == call["CALL_ID"] and c["action"] == "show"]
    offline = {e["crm_leg"] for e in logs if e["event"] == "crm.offline"}
    replayed = {e["crm_leg"] for e in logs if e["event"] == "crm.replayed"}
    assert offline == replayed == set(expected)
    rows = {c.crm_leg: c for c in stack.journal.calls()}
    assert all(rows[leg].mode == "offline" and rows[leg].state == "done" for leg in expected)
    assert rows["early"].mode == "online" and rows["early"].state == "done"


async def test_calls_during_a_short_outage_are_mirrored_afterwards_with_their_real_data(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    stack = await make_stack(sim)
    await outage_scenario(sim, stack, outage=2.0, calls=25)


@pytest.mark.slow
async def test_a_60_second_outage_is_mirrored_afterwards(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    stack = await make_stack(sim)
    await outage_scenario(sim, stack, outage=60.0, calls=200)


# --- answers lost, doubtful resends ------------------------------------------------------------------


def carries(method: str) -> Callable[[Forwarded], bool]:
    return lambda request: any(m == method for _k, m, _p in request.commands())


async def test_a_lost_answer_to_register_and_finish_is_checked_before_anything_is_resent(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    async with B24Proxy(sim) as proxy:
        stack = await make_stack(sim, webhook=proxy.webhook_url, register_timeout=30)
        proxy.lose_answer(carries("telephony.externalCall.finish"))
        stack.append(register("lost-1", user=12))
        stack.append(CrmFinish("lost-1", 12, 40, "200"))
        stack.start()
        await stack.drained()
    assert next(r.answered for r in proxy.log if r.method == "batch") is False
    assert [m for r in proxy.sends for _k, m, _p in r.commands()].count("voximplant.statistic.get") == 1
    call = stack.sim_calls()["lost-1"]
    assert call["finish_attempts"] == 1
    row = stack.journal.calls(crm_leg="lost-1")[0]
    assert (row.call_id, row.state) == (call["CALL_ID"], "done")
    notes = [op.note for op in stack.journal.operations("lost-1")]
    assert notes == ["already in Bitrix24 (voximplant.statistic.get)"] * 2


async def test_a_lost_answer_to_a_lone_register_gets_the_same_call_id_again(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    async with B24Proxy(sim) as proxy:
        stack = await make_stack(sim, webhook=proxy.webhook_url, register_timeout=30)
        proxy.lose_answer(carries("telephony.externalCall.register"))
        stack.append(register("lost-2", user=13))
        stack.start()
        await eventually(lambda: stack.journal.calls(crm_leg="lost-2")[0].call_id)
        stack.append(CrmFinish("lost-2", 13, 12, "200"))
        await stack.drained()
    registers = [r for r in proxy.log for _k, m, _p in r.commands() if m == "telephony.externalCall.register"]
    assert len(registers) == 2, "the register was resent once"
    call = stack.sim_calls()["lost-2"]
    assert stack.journal.calls(crm_leg="lost-2")[0].call_id == call["CALL_ID"]
    assert call["finish_attempts"] == 1 and call["finish"]["DURATION"] == 12


@pytest.mark.parametrize(("earlier_tries", "outcome"), [(1, "done"), (0, "failed")])
async def test_call_not_found_on_a_repeated_finish_counts_as_finished(
    tmp_path: Path, earlier_tries: int, outcome: str
) -> None:
    with Journal.open(tmp_path / "j.db") as journal:
        journal.append(register("x"))
        journal.append(CrmFinish("x", 11, 3, "200"))
        reg, _fin = journal.ready()
        journal.mark_done(reg.id, call_id="externalCall.1")
        if earlier_tries:
            journal.mark_sent([journal.ready()[0].id])  # sent before, answer never recorded
            journal.requeue_sent()
        (fin,) = journal.ready()
        assert fin.attempts == earlier_tries
        settler = Settler(journal.aio, DeliveryObserver(), time.time, 0.1, 1.0)
        not_found = CallNotFoundError(FINISH, "", "Call is not found (call should be registered prior to finishing")
        with capture_logs() as logs:
            await settler.error(fin, not_found)
        op = journal.operations("x")[1]
    assert op.state == outcome
    if outcome == "done":
        assert "already finished" in op.note
        assert [e["event"] for e in logs] == ["crm.delivered"]
    else:
        assert "Call is not found" in op.last_error
        assert [e["event"] for e in logs] == ["crm.failed"]


# --- failures that park, recordings, other work ------------------------------------------------------


async def test_a_permanent_failure_parks_the_call_with_the_reason(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    stack = await make_stack(sim, register_timeout=30)
    with capture_logs() as logs:
        stack.append(register("dismissed", user=17))  # Fyodor left the company
        stack.append(CrmFinish("dismissed", 17, 5, "200"))
        stack.append(register("fine", user=11))
        stack.append(CrmFinish("fine", 11, 5, "200"))
        stack.start()
        await stack.drained()
    ops = stack.journal.operations("dismissed")
    assert [op.state for op in ops] == ["failed", "failed"]
    assert "User is not found" in ops[0].last_error
    assert ops[1].last_error.startswith("register failed:")
    failed = [e for e in logs if e["event"] == "crm.failed"]
    assert {(e["crm_leg"], e["method"]) for e in failed} == {
        ("dismissed", "telephony.externalCall.register"), ("dismissed", "telephony.externalCall.finish")}  # fmt: skip
    assert stack.journal.calls(crm_leg="dismissed")[0].state == "failed"
    assert stack.sim_calls()["fine"]["status"] == "finished"


async def test_recordings_are_attached_after_finish_and_a_missing_one_is_reported(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    audio = b"RIFF" + bytes(range(256)) * 40

    failures = {"rec-flaky": 1}

    async def loader(name: str) -> bytes | None:
        if failures.get(name):
            failures[name] -= 1
            raise OSError("ARI is not reachable")
        return audio if name in ("rec-ok", "rec-flaky") else None

    stack = await make_stack(sim, loader=loader, register_timeout=30)
    for leg, recording in (("with-rec", "rec-ok"), ("no-rec", "rec-gone"), ("flaky", "rec-flaky")):
        stack.append(register(leg))
        stack.append(CrmFinish(leg, 11, 60, "200"))
        stack.append(CrmAttachRecord(leg, recording))
    stack.start()
    await stack.drained()
    mirrored = stack.sim_calls()
    assert mirrored["with-rec"]["record"] == {"name": "rec-ok.wav", "size": len(audio)}
    assert sim.record_content(mirrored["with-rec"]["CALL_ID"]) == audio
    assert "record" not in mirrored["no-rec"]
    (missing,) = [op for op in stack.journal.operations("no-rec") if op.kind == "attach_record"]
    assert (missing.state, missing.last_error) == ("failed", "recording 'rec-gone' not found")
    assert mirrored["no-rec"]["status"] == "finished"
    assert mirrored["flaky"]["record"] == {"name": "rec-flaky.wav", "size": len(audio)}, "read again later"
    assert "ARI is not reachable" in stack.journal.operations("flaky")[-1].last_error


async def test_a_backlog_of_recordings_does_not_hold_up_a_new_calls_register(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    """Each upload is a request of its own; after an outage there may be hundreds. A call ringing meanwhile must
    still get its card within ``register_timeout`` (0.5 s here) instead of going offline."""
    audio = b"RIFF" + bytes(range(256)) * 40

    async def slow_loader(name: str) -> bytes | None:
        await asyncio.sleep(0.05)  # 60 uploads: 3 s at least
        return audio

    observer = CountingObserver()
    stack = await make_stack(sim, loader=slow_loader, observer=observer)
    for i in range(60):
        stack.append(register(f"old-{i}", show=False))
        stack.append(CrmFinish(f"old-{i}", 11, 60, "200"))
        stack.append(CrmAttachRecord(f"old-{i}", f"rec-{i}"))
    stack.start()
    await eventually(lambda: any("record" in c for c in stack.sim_calls().values()), message="no upload began")
    stack.append(register("ringing-now"))
    await eventually(lambda: "ringing-now" in stack.sim_calls(), timeout=2.0, message="register held up")
    attached = sum(1 for c in stack.sim_calls().values() if "record" in c)
    assert attached < 60, "the register went out while the uploads were still going"
    assert observer.offline_legs == []
    await stack.drained()
    assert all("record" in c for leg, c in stack.sim_calls().items() if leg.startswith("old-"))


async def _late_register_seconds(stack: Stack, *, bucket_filling: bool) -> float:
    """Three calls' registers go in one batch the portal takes 0.5 s over; 0.1 s later another call's register is
    journaled: how long until the portal has it."""
    for i in range(3):
        stack.append(register(f"early-{i}", show=False))
    stack.start()
    await asyncio.sleep(0.1)
    assert stack.sim_calls() == {}, "the first batch is still in flight"
    if bucket_filling:
        assert stack.client.stats.limiter is not None
        fill_bucket(stack.client.stats.limiter)
    started = time.monotonic()
    stack.append(register("late", show=False))
    await eventually(lambda: "late" in stack.sim_calls(), timeout=3.0, message="the late register never arrived")
    return time.monotonic() - started


async def test_a_call_journaled_while_a_batch_is_in_flight_does_not_wait_for_its_answer(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    sim.set_fault(latency=0.5)
    stack = await make_stack(sim, register_timeout=5.0)
    assert await _late_register_seconds(stack, bucket_filling=False) < 0.75, "it waited for the batch in flight"
    await stack.drained()


async def test_with_the_bucket_filling_a_call_waits_to_ride_in_the_next_batch(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    """Near the portal's limit every request must carry as much as it can: no second request in flight."""
    sim.set_fault(latency=0.5)
    stack = await make_stack(sim, register_timeout=5.0)
    assert await _late_register_seconds(stack, bucket_filling=True) >= 0.75, "it went in a request of its own"
    await stack.drained()


async def test_cycles_that_overlap_never_send_an_operation_twice(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    """A cycle takes a backlog of three batches; calls journaled while its requests are in flight (50 ms each) go in
    express cycles, which must leave the backlog's later batches alone."""
    sim.set_fault(latency=0.05)
    observer = CountingObserver()
    stack = await make_stack(sim, register_timeout=5.0, observer=observer)

    def journal_call(leg: str, duration: int) -> None:
        stack.append(register(leg))
        stack.append(CrmHide(leg, (11,)))
        stack.append(CrmFinish(leg, 11, duration, "200"))

    for i in range(40):
        journal_call(f"backlog-{i}", i)
    stack.start()
    for i in range(20):
        await asyncio.sleep(0.01)
        journal_call(f"stream-{i}", i)
    await stack.drained()
    calls = stack.sim_calls()  # asserts each leg registered once
    assert len(calls) == 60 and all(c["status"] == "finished" and c["finish_attempts"] == 1 for c in calls.values())
    assert sum(observer.batches) == 60 * 3, "every operation went exactly once"
    assert max(observer.batches) == 48 and len(observer.batches) > 3, "the backlog went in full batches, alongside"


async def test_tasks_and_notifications_go_out_too(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    stack = await make_stack(sim)
    stack.append(CrmMissedTask(12, "Call back +79161234567", "Missed at 10:20"))
    stack.append(CrmNotify(13, "You missed a call"))
    stack.start()
    await stack.drained()
    state = sim.state()
    assert [t for t in state["tasks"] if "Call back" in str(t)]
    assert [n for n in state["notifications"] if "You missed a call" in str(n)]


# --- shutdown ----------------------------------------------------------------------------------------


async def test_flush_delivers_what_it_can_and_says_when_it_could_not(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    audio = b"RIFF" + bytes(range(256)) * 40

    async def loader(name: str) -> bytes | None:
        await asyncio.sleep(0.2)
        return audio

    stack = await make_stack(sim, register_timeout=30, loader=loader)
    stack.append(register("f1"))
    stack.append(CrmFinish("f1", 11, 9, "200"))
    stack.append(CrmAttachRecord("f1", "rec-f1"))
    assert await stack.delivery.flush(5.0) is True
    assert stack.sim_calls()["f1"]["status"] == "finished"
    assert stack.sim_calls()["f1"]["record"] == {"name": "rec-f1.wav", "size": len(audio)}, "flush waits for uploads"
    sim.set_fault(outage_seconds=30)
    stack.append(register("f2"))
    assert await stack.delivery.flush(0.5) is False
    assert stack.journal.depth() == 1


async def test_flush_waits_for_the_answer_of_a_request_in_flight(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    """At shutdown the running loop's request is mid-air: flush must not call the journal drained before it lands
    (the task is cancelled next, and the call would wait for the next start)."""
    sim.set_fault(latency=0.3)
    stack = await make_stack(sim, register_timeout=30)
    stack.start()
    stack.append(register("mid-air", show=False))
    await asyncio.sleep(0.05)
    assert await stack.delivery.flush(3.0) is True
    assert "mid-air" in stack.sim_calls() and stack.journal.depth() == 0


# --- kill -9 -----------------------------------------------------------------------------------------


def in_flight(path: Path) -> int:
    conn = sqlite3.connect(path, timeout=5)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM operations WHERE state = 'sent'").fetchone()[0])
    finally:
        conn.close()


async def test_a_delivery_killed_mid_batch_loses_nothing_and_sends_nothing_twice(
    sim: Bitrix24Simulator, tmp_path: Path, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    path = tmp_path / "journal-kill.db"
    calls = 120
    with Journal.open(path) as journal, journal.transaction():
        for i in range(calls):
            journal.append(register(f"k-{i}", user=AGENTS[i % len(AGENTS)]))
            journal.append(CrmShow(f"k-{i}", (11,)))
            if i % 3:
                journal.append(CrmFinish(f"k-{i}", AGENTS[i % len(AGENTS)], i, "200" if i else "304"))
    rng = random.Random()
    killed_in_flight = 0
    async with B24Proxy(sim, answer_delay=0.2) as proxy:
        for _round in range(3):
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.integration.delivery_child", str(path), proxy.webhook_url, str(RATE),
                str(BURST), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                await eventually(lambda: in_flight(path) > 0, timeout=15, message="a batch in flight")
                await asyncio.sleep(rng.uniform(0.0, 0.15))  # somewhere inside the request, wherever that is
            finally:
                child.kill()  # SIGKILL
                await child.wait()
            killed_in_flight += in_flight(path) > 0
    assert killed_in_flight >= 1, "no kill hit a batch in flight"
    assert [r for r in proxy.log if r.method == "batch" and r.commands()], "batches reached the portal"

    stack = await make_stack(sim, register_timeout=30, journal_path=path)
    for i in range(calls):
        if not i % 3:  # these calls end only now
            stack.journal.append(CrmFinish(f"k-{i}", AGENTS[i % len(AGENTS)], 7, "200"))
    stack.start()
    await stack.drained(within=20)
    mirrored = stack.sim_calls()
    assert set(mirrored) == {f"k-{i}" for i in range(calls)}
    for leg, call in mirrored.items():
        assert call["status"] == "finished" and call["finish_attempts"] == 1, leg
    assert {c.state for c in stack.journal.calls()} == {"done"}


# --- where recordings come from ----------------------------------------------------------------------


async def test_the_recording_loader_reads_the_spool_then_asks_ari(tmp_path: Path) -> None:
    (tmp_path / "on-disk.wav").write_bytes(b"disk")
    seen: list[tuple[str, str | None]] = []

    async def stored_file(request: web.Request) -> web.Response:
        seen.append((request.match_info["name"], request.headers.get("Authorization")))
        if request.match_info["name"] == "in/ari":
            return web.Response(body=b"from-ari", content_type="audio/wav")
        return web.json_response({"message": "Recording not found"}, status=404)

    app = web.Application()
    app.router.add_get("/ari/recordings/stored/{name}/file", stored_file)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        ari = AsteriskSettings(ari_url=f"http://127.0.0.1:{port}", ari_password=Secret("ari-pass"))
        load = recording_loader(ari, directories=[tmp_path])
        assert await load("on-disk") == b"disk"
        assert await load("in/ari") == b"from-ari"
        assert await load("nowhere") is None
        assert seen[0] == ("in/ari", "Basic " + base64.b64encode(b"b24bridge:ari-pass").decode())
    finally:
        await runner.cleanup()
    with pytest.raises(OSError, match="ARI is not reachable"):
        await load("in/ari")
    assert await recording_loader(None, directories=[tmp_path])("nowhere") is None


@pytest.mark.parametrize("statistics", ["none", "own"])
async def test_a_doubtful_call_the_statistics_may_hide_is_parked_not_sent_again(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]], statistics: str
) -> None:
    """The answer to register + finish is lost; the app user (not an admin) cannot see user 12's calls, so "not in
    the statistics" proves nothing: the call is parked with the reason, never registered a second time."""
    sim.set_rights(1, admin=False, statistics=statistics)
    async with B24Proxy(sim) as proxy:
        stack = await make_stack(sim, webhook=proxy.webhook_url, register_timeout=30)
        proxy.lose_answer(carries("telephony.externalCall.finish"))
        stack.append(register("hidden-1", user=12))
        stack.append(CrmFinish("hidden-1", 12, 40, "200"))
        with capture_logs() as logs:
            stack.start()
            await stack.drained()
    call = stack.sim_calls()["hidden-1"]
    assert (call["status"], call["finish_attempts"]) == ("finished", 1), "it did arrive, once"
    ops = {op.kind: op for op in stack.journal.operations("hidden-1")}
    assert (ops["register"].state, ops["finish"].state) == ("failed", "failed")
    assert ops["register"].last_error.startswith("parked: it may already be in Bitrix24")
    assert ("ACCESS_DENIED" in ops["register"].last_error) is (statistics == "none")
    assert "b24-bridge replay" in ops["register"].last_error
    assert [e["event"] for e in logs if e["event"] == "crm.statistics_access"] == ["crm.statistics_access"]
    assert any(e["event"] == "crm.failed" and e["crm_leg"] == "hidden-1" for e in logs)
    registers = [m for r in proxy.log for _k, m, _p in r.commands() if m == "telephony.externalCall.register"]
    assert registers == ["telephony.externalCall.register"], "sent once, never again"


# --- a voicemail's task: after the recording, linking it ----------------------------------------------


VM_AUDIO = b"RIFF" + bytes(range(256)) * 40


async def vm_loader(name: str) -> bytes | None:
    return VM_AUDIO if name.endswith("-voicemail") else None


def journal_voicemail(stack: Stack, leg: str, recording: str) -> None:
    stack.append(register(leg))
    stack.append(CrmFinish(leg, 11, 0, "304"))
    stack.append(CrmAttachRecord(leg, recording))
    stack.append(CrmMissedTask(11, f"Skipped incoming call from {leg}", f"{leg} left a voicemail.", leg))


async def test_the_task_links_the_recording_once_attached_and_goes_without_a_link_when_there_is_none(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    stack = await make_stack(sim, loader=vm_loader, register_timeout=30)
    journal_voicemail(stack, "vm-ok", "vm-ok-voicemail")
    journal_voicemail(stack, "vm-gone", "vm-gone-message")  # the PBX lost the recording: the attach fails for good
    stack.start()
    await stack.drained()
    state = sim.state()
    tasks = {t["title"].rsplit(" ", 1)[-1]: t for t in state["tasks"]}
    call_id = stack.sim_calls()["vm-ok"]["CALL_ID"]
    assert tasks["vm-ok"]["description"] == (
        f"vm-ok left a voicemail.\nCaller left [URL={sim.url}/_sim/records/{call_id}]a voice message[/URL]."
    )
    assert tasks["vm-gone"]["description"].endswith("Caller left a voice message (see the call in Bitrix24's call "
                                                    "statistics).")  # fmt: skip
    methods = [r["method"] for r in state["requests"]]
    assert methods.index("telephony.externalCall.attachRecord") < methods.index("tasks.task.add")
    (task_op,) = [op for op in stack.journal.operations("vm-gone") if op.kind == "missed_task"]
    assert (task_op.state, task_op.note) == ("done", "delivered without the recording's link")


async def test_an_app_user_who_may_not_read_the_statistics_still_gets_the_task(
    sim: Bitrix24Simulator, make_stack: Callable[..., Awaitable[Stack]]
) -> None:
    sim.set_rights(1, admin=False, statistics="none")
    stack = await make_stack(sim, loader=vm_loader, register_timeout=30)
    journal_voicemail(stack, "vm-hidden", "vm-hidden-voicemail")
    stack.start()
    await stack.drained()
    (task,) = sim.state()["tasks"]
    assert task["description"].endswith("(see the call in Bitrix24's call statistics).")
    assert stack.sim_calls()["vm-hidden"]["record"]["size"] == len(VM_AUDIO)
