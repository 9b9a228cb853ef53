"""The leaky bucket, the operating budget and injected faults."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.sim.b24_support import FakeClock, Rest, rest_fixture, sim_fixture  # noqa: F401


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def clocked(clock: FakeClock) -> AsyncIterator[Rest]:
    async with Bitrix24Simulator(clock=clock) as simulator, aiohttp.ClientSession() as session:
        yield Rest(session, simulator)


async def test_51st_request_in_a_burst_gets_503_then_the_bucket_drains(clocked: Rest, clock: FakeClock) -> None:
    for _ in range(50):
        status, _ = await clocked.call("user.current")
        assert status == 200
    status, body = await clocked.call("user.current")
    assert (status, body) == (503, {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"})
    await clocked.get("/_sim/state")  # control endpoints are never counted
    clock.advance(0.5)  # drains 2/s: room for exactly one more
    assert (await clocked.call("user.current"))[0] == 200
    assert (await clocked.call("user.current"))[0] == 503
    clock.advance(25)
    statuses = [(await clocked.call("user.current"))[0] for _ in range(51)]
    assert statuses == [200] * 50 + [503]
    counters = clocked.sim.state()["counters"]
    assert counters["query_limit_exceeded"] == 3
    assert [r["http_status"] for r in clocked.sim.state()["requests"]].count(503) == 3


async def test_a_batch_counts_once_for_the_bucket(clocked: Rest) -> None:
    for _ in range(49):
        await clocked.call("user.current")
    batch = await clocked.result("batch", {"cmd": {f"k{i}": "user.current" for i in range(50)}})
    assert len(batch["result"]) == 50
    assert (await clocked.call("user.current"))[0] == 503


async def test_enterprise_plan_and_overrides() -> None:
    clock = FakeClock()
    async with Bitrix24Simulator(plan="enterprise", clock=clock) as simulator, aiohttp.ClientSession() as session:
        rest = Rest(session, simulator)
        statuses = [(await rest.call("user.current"))[0] for _ in range(251)]
        assert statuses.count(200) == 250 and statuses[-1] == 503
        clock.advance(1.0)  # 5/s
        assert [(await rest.call("user.current"))[0] for _ in range(6)] == [200] * 5 + [503]
    async with Bitrix24Simulator(rate=1, burst=3, clock=FakeClock()) as simulator, aiohttp.ClientSession() as session:
        rest = Rest(session, simulator)
        assert [(await rest.call("user.current"))[0] for _ in range(4)] == [200, 200, 200, 503]


async def test_operating_budget_blocks_one_method_for_its_window() -> None:
    clock = FakeClock()
    async with (
        Bitrix24Simulator(clock=clock, operating_limit=10, operating_cost={"user.get": 4}) as simulator,
        aiohttp.ClientSession() as session,
    ):
        rest = Rest(session, simulator)
        operating = []
        for _ in range(3):
            status, body = await rest.call("user.get")
            assert status == 200
            operating.append(body["time"]["operating"])
        assert operating[0] >= 4 and operating[2] >= 12
        status, body = await rest.call("user.get")
        assert (status, body["error"]) == (429, "OPERATION_TIME_LIMIT")
        assert (await rest.call("user.current"))[0] == 200  # other methods are unaffected
        batch = await rest.result("batch", {"cmd": {"u": "user.get", "c": "user.current"}})
        assert batch["result_error"]["u"]["error"] == "OPERATION_TIME_LIMIT" and "c" in batch["result"]
        clock.advance(601)
        assert (await rest.call("user.get"))[0] == 200


async def test_outage_closes_connections_until_it_ends(clocked: Rest, clock: FakeClock) -> None:
    clocked.sim.set_fault(outage_seconds=5)
    with pytest.raises(aiohttp.ClientConnectionError):
        await clocked.call("user.current")
    tokens = clocked.sim.issue_tokens()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with clocked.session.post(clocked.sim.oauth_url, data={"grant_type": "refresh_token"}):
            pass
    status, state = await clocked.get("/_sim/state")  # the control plane stays up
    assert status == 200 and state["counters"]["outage_refused"] == 2 and state["faults"]["outage_remaining"] == 5
    clock.advance(5)
    assert (await clocked.oauth("user.current", tokens["access_token"]))[0] == 200


async def test_outage_as_nginx_502(rest: Rest) -> None:
    rest.sim.set_fault(outage_seconds=60, outage_mode="502")
    async with rest.session.post(f"{rest.sim.webhook_url}user.current") as response:
        assert response.status == 502 and response.content_type == "text/html"
        assert "502 Bad Gateway" in await response.text()
    rest.sim.clear_faults()
    assert (await rest.call("user.current"))[0] == 200


async def test_error_rate_kinds_and_reproducible_seed(rest: Rest) -> None:
    for kind, status, code in [
        ("500", 500, "INTERNAL_SERVER_ERROR"),
        ("503", 503, "QUERY_LIMIT_EXCEEDED"),
        ("429", 429, "OPERATION_TIME_LIMIT"),
        ("401", 401, "expired_token"),
    ]:
        rest.sim.set_fault(error_rate=1.0, error_kinds=[kind])
        got, body = await rest.call("telephony.externalCall.register", {"USER_ID": 12, "PHONE_NUMBER": "1", "TYPE": 2})
        assert (got, body["error"]) == (status, code)
    assert rest.sim.state()["calls"] == []  # injected failures change nothing

    async def pattern() -> list[int]:
        rest.sim.set_fault(error_rate=0.5, error_kinds=["500"], seed=7)
        return [(await rest.call("user.current"))[0] for _ in range(16)]

    first = await pattern()
    assert 0 < first.count(500) < 16
    assert await pattern() == first


async def test_latency_delays_requests(rest: Rest) -> None:
    rest.sim.set_fault(latency=0.2)
    started = time.monotonic()
    assert (await rest.call("user.current"))[0] == 200
    assert time.monotonic() - started >= 0.2


async def test_fault_control_endpoint(rest: Rest) -> None:
    status, body = await rest.control("fault", {"error_rate": 1, "error_kinds": ["503"]})
    assert status == 200 and body["result"]["error_rate"] == 1
    assert (await rest.call("user.current"))[0] == 503
    status, body = await rest.control("fault", {"error_kinds": ["boom"], "error_rate": 1})
    assert status == 400 and "boom" in body["error"]
    assert (await rest.call("user.current"))[0] == 503  # a rejected request changed nothing
    await rest.control("fault", {})
    assert (await rest.call("user.current"))[0] == 200
