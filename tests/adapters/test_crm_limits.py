"""Bitrix24's limits slow the client down by one drain interval, they never stall it; other transient errors get
a short back-off. Against the Bitrix24 simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from bridge.config import Bitrix24Settings
from bridge.config.reader import Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.errors import TransientCrmError
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.eventually import eventually

WEBHOOK = "1/w3bh00kS3cretCode"
WEBHOOK_CODE = "w3bh00kS3cretCode"
DRAIN = 0.5
"""One drain interval of a standard portal (2 requests/s)."""


def settings_of(sim: Bitrix24Simulator, **overrides: Any) -> Bitrix24Settings:
    return Bitrix24Settings(webhook_url=Secret(sim.webhook_url), **overrides)


@pytest.fixture
async def sim() -> AsyncIterator[Bitrix24Simulator]:
    async with Bitrix24Simulator(webhook=WEBHOOK) as simulator:
        yield simulator


def department_batch() -> dict[str, tuple[str, dict[str, Any]]]:
    return {"d": ("department.get", {}), "u": ("user.get", {"FILTER": {"UF_PHONE_INNER": "1002"}})}


async def timed(work: Any) -> float:
    started = time.monotonic()
    await work
    return time.monotonic() - started


def requests_to(sim: Bitrix24Simulator, method: str) -> int:
    return sum(1 for request in sim.state()["requests"] if request["method"] == method)


async def test_a_batch_refused_by_a_429_goes_through_one_drain_interval_later(sim: Bitrix24Simulator) -> None:
    # retry_attempts=1 as Delivery builds it: a refused batch never ran, so it is tried again all the same
    async with Bitrix24Client(settings_of(sim), retry_attempts=1) as client:
        sim.set_fault(error_rate=1.0, error_kinds=("429",))
        with capture_logs() as logs:
            started = time.monotonic()
            batch = asyncio.create_task(client.batch(department_batch()))
            await eventually(lambda: sim.state()["counters"].get("faults_injected", 0) >= 1)
            sim.clear_faults()
            answer = await batch
            elapsed = time.monotonic() - started
    assert answer.errors == {} and set(answer.results) == {"d", "u"}
    assert DRAIN * 0.8 <= elapsed < 1.0, "held back one drain interval, not the maximum back-off (10 s)"
    assert requests_to(sim, "batch") == 2
    limited = [entry for entry in logs if entry["event"] == "crm.limited"]
    assert [(e["method"], e["scope"], e["pause"]) for e in limited] == [("batch", "method", DRAIN)]
    assert WEBHOOK_CODE not in repr(logs)


async def test_a_lasting_limit_gives_up_after_two_more_tries_at_the_drain_pace(sim: Bitrix24Simulator) -> None:
    sim.set_fault(error_rate=1.0, error_kinds=("429",))
    async with Bitrix24Client(settings_of(sim), retry_attempts=1) as client:  # retry_max_wait stays 10 s
        started = time.monotonic()
        with capture_logs() as logs, pytest.raises(TransientCrmError) as caught:
            await client.batch(department_batch())
        elapsed = time.monotonic() - started
    assert caught.value.rate_limited and caught.value.status == 429
    assert requests_to(sim, "batch") == 3
    assert 2 * DRAIN * 0.8 <= elapsed < 2 * DRAIN + 0.5, "a drain interval between tries, nothing more"
    retries = [entry for entry in logs if entry["event"] == "crm.retry"]
    assert [(e["code"], e["wait"]) for e in retries] == [("OPERATION_TIME_LIMIT", 0.0)] * 2


async def test_a_429_holds_back_only_its_own_method(sim: Bitrix24Simulator) -> None:
    async with Bitrix24Client(settings_of(sim), retry_attempts=1) as client:
        sim.set_fault(error_rate=1.0, error_kinds=("429",))
        with pytest.raises(TransientCrmError):
            await client.batch(department_batch())
        sim.clear_faults()
        elapsed = await timed(client.call("profile"))
    assert elapsed < DRAIN * 0.6, "the probe of the portal's return is not held back by the batch's limit"


async def test_after_a_query_limit_every_method_waits_one_drain_interval(sim: Bitrix24Simulator) -> None:
    async with Bitrix24Client(settings_of(sim), retry_attempts=1) as client:
        sim.set_fault(error_rate=1.0, error_kinds=("503",))
        with capture_logs() as logs, pytest.raises(TransientCrmError) as caught:
            await client.call("department.get")
        sim.clear_faults()
        assert caught.value.query_limit
        elapsed = await timed(client.call("profile"))
        assert client.stats.query_limit_exceeded == 3
    assert DRAIN * 0.8 <= elapsed < 1.0, "held back one drain interval for the whole portal, no more"
    limited = {(e["scope"], e["code"]) for e in logs if e["event"] == "crm.limited"}
    assert limited == {("portal", "QUERY_LIMIT_EXCEEDED")}


async def test_a_server_error_is_retried_after_a_short_capped_back_off(sim: Bitrix24Simulator) -> None:
    sim.set_fault(error_rate=1.0, error_kinds=("500",))
    async with Bitrix24Client(settings_of(sim), retry_attempts=3) as client:  # retry_max_wait stays 10 s
        with capture_logs() as logs:
            started = time.monotonic()
            with pytest.raises(TransientCrmError):
                await client.call("department.get")
            elapsed = time.monotonic() - started
    waits = [entry["wait"] for entry in logs if entry["event"] == "crm.retry"]
    assert len(waits) == 2 and waits[0] <= 0.5 and waits[1] <= 1.0, "jittered exponential: up to 0.5 s, then 1 s"
    assert elapsed < 1.5 + 0.5
    assert not [entry for entry in logs if entry["event"] == "crm.limited"], "a 500 is not a limit: no pause"


async def test_a_429_while_a_call_waits_does_not_stall_it(sim: Bitrix24Simulator) -> None:
    async with Bitrix24Client(settings_of(sim)) as client:  # the defaults: 4 attempts, back-off up to 10 s
        sim.set_fault(error_rate=1.0, error_kinds=("429",))
        call = asyncio.create_task(client.call("department.get"))
        await eventually(lambda: sim.state()["counters"].get("faults_injected", 0) >= 1)
        sim.clear_faults()
        started = time.monotonic()
        departments = await call
        elapsed = time.monotonic() - started
    assert [d["NAME"] for d in departments] == ["Call centre", "Sales", "Support"]
    assert elapsed < 1.0


# The portal is scaled (50 requests/s, a bucket of 12) so that 200 requests take a few seconds at its pace.
RATE, BURST = 50.0, 12


async def test_a_stream_with_ten_percent_limit_and_server_errors_is_delivered_at_about_the_paced_bound() -> None:
    async with Bitrix24Simulator(webhook=WEBHOOK, rate=RATE, burst=BURST) as sim:
        async with Bitrix24Client(settings_of(sim, rate=RATE, burst=BURST), retry_attempts=8) as client:
            sim.set_fault(error_rate=0.1, error_kinds=("429", "500", "503"), seed=6)
            methods = ("department.get", "profile", "user.get")
            started = time.monotonic()
            answers = await asyncio.gather(*(client.call(methods[n % 3]) for n in range(200)))
            elapsed = time.monotonic() - started
            sent = client.stats.requests
        counters = sim.state()["counters"]
    assert all(answer is not None for answer in answers) and len(answers) == 200
    assert counters.get("faults_injected", 0) >= 10, "the faults must really have been there"
    # Paced: the same 200 requests sent unpaced overflow the portal's bucket of 12 about 180 times. Our 2 requests of
    # head-room are 40 ms at this test's 50 requests/s, which a loaded machine's scheduling can exceed now and then;
    # make bench holds the real bucket (2/s, 1 s of head-room) at 0.
    assert counters.get("query_limit_exceeded", 0) <= 4, "our pace overflowed the portal's own bucket"
    capacity = BURST - 2  # our bucket keeps 2 requests of head-room below the portal's
    paced_bound = (sent - capacity) / RATE
    assert elapsed < paced_bound * 1.1 + 0.5, (elapsed, paced_bound)
