"""The portal's budget shared through a real PostgreSQL (bridge/leadership/budget.py): the bucket's arithmetic
under concurrent takers, a dead taker's bounded cost, a 503's effect, and the fallback when the database is slow
or away."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from structlog.testing import capture_logs

from bridge.config import Bitrix24Settings
from bridge.config.reader import Secret
from bridge.crm.client import Bitrix24Client
from bridge.crm.pacing import make_limiter
from bridge.journal.pg import PgDb
from bridge.leadership.budget import BudgetTiming, SharedBudget
from bridge.sim.bitrix24 import Bitrix24Simulator
from tests.eventually import eventually
from tests.pgserver import PASSWORD

PORTAL = "example.bitrix24.ru"


@pytest.fixture
async def db(pg_url: str) -> AsyncIterator[str]:
    """The database, migrated the way a bridge's journal migrates it at start."""
    journal = await PgDb.connect(pg_url, password=PASSWORD)
    await journal.close()
    yield pg_url


def budget(url: str, bridge: str, *, rate: float, burst: int, timing: BudgetTiming | None = None) -> SharedBudget:
    return SharedBudget(url, password=PASSWORD, portal=PORTAL, bridge_id=bridge, rate=rate, burst=burst,
                        timing=timing or BudgetTiming())  # fmt: skip


def peak_level(times: list[float], rate: float) -> float:
    """The highest level a leaky bucket draining ``rate``/s reaches when one request arrives at each of ``times``."""
    level, previous, peak = 0.0, None, 0.0
    for at in sorted(times):
        level = (level if previous is None else max(0.0, level - rate * (at - previous))) + 1.0
        previous, peak = at, max(peak, level)
    return peak


async def test_concurrent_takers_of_three_bridges_never_exceed_the_burst_plus_the_drain(db: str) -> None:
    rate, burst = 10.0, 42  # the bucket's size is burst - 2 = 40; grants of 4
    bridges = [budget(db, f"office-{n}", rate=rate, burst=burst) for n in range(3)]
    sent: list[float] = []

    async def sender(b: SharedBudget, count: int) -> None:
        for _ in range(count):
            await b.take()
            sent.append(time.monotonic())

    started = time.monotonic()
    try:
        await asyncio.gather(*(sender(b, 6) for b in bridges for _ in range(5)))  # 90 requests, 15 at a time
    finally:
        for b in bridges:
            await b.close()
    took = time.monotonic() - started
    assert len(sent) == 90
    # each bridge alone would let 40 go at once: 90 together; shared, the portal's bucket never holds more than 40
    # (one more allowed for a wake-up that came late on a busy machine, which bunches two requests up)
    assert peak_level(sent, rate) <= 40 + 1, peak_level(sent, rate)
    assert took >= (90 - 40) / rate * 0.9, f"90 requests in {took:.2f} s: faster than the portal drains"
    assert sum(b.reservations for b in bridges) < 90 / 2, "waiting requests share round trips"


async def test_a_bridge_that_dies_with_requests_waiting_holds_up_the_others_only_for_its_grant(db: str) -> None:
    rate, burst = 5.0, 42  # size 40: grants of 4
    dying, other = budget(db, "office-a", rate=rate, burst=burst), budget(db, "office-b", rate=rate, burst=burst)
    for _ in range(40):
        await dying.take()  # the burst: at once
    waiting = [asyncio.create_task(dying.take()) for _ in range(20)]  # would be 4 s of the portal's time
    await asyncio.sleep(0.3)
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    await dying.close()
    started = time.monotonic()
    try:
        await other.take()
    finally:
        await other.close()
    # the dead bridge promised itself at most one grant ahead (4 slots, 0.8 s) beyond what it used
    assert time.monotonic() - started < 2.0


async def test_a_503_makes_every_bridge_start_again_from_a_full_bucket(db: str) -> None:
    rate = 2.0
    a, b = budget(db, "office-a", rate=rate, burst=50), budget(db, "office-b", rate=rate, burst=50)
    try:
        await b.take()
        started = time.monotonic()
        await b.take()
        assert time.monotonic() - started < 0.2, "an empty bucket lets requests go at once"
        a.overflowed()  # the portal said QUERY_LIMIT_EXCEEDED to a: its bucket is full, whatever the row said
        for bridge in (a, b):  # from then on each request of either bridge waits for one drained slot
            started = time.monotonic()
            await bridge.take()
            assert time.monotonic() - started >= 0.8 / rate, bridge.bridge_id
    finally:
        await a.close()
        await b.close()


async def test_an_unreachable_database_falls_back_to_a_share_of_the_rate_and_logs_it(db: str) -> None:
    with socket_closed_port() as port:
        url = f"postgresql://bridge@127.0.0.1:{port}/nowhere"
        away = budget(url, "office-a", rate=4.0, burst=12, timing=BudgetTiming(ask=1.0, retry=30.0))
        with capture_logs() as logs:
            started = time.monotonic()
            for _ in range(4):  # the fallback bucket starts full: 2 requests/s (half of 4, two bridges assumed)
                await away.take()
            took = time.monotonic() - started
        await away.close()
    assert not away.shared
    assert 1.2 <= took < 5.0, took
    fallbacks = [e for e in logs if e["event"] == "budget.fallback"]
    assert len(fallbacks) == 1 and fallbacks[0]["bridges"] == 2 and fallbacks[0]["rate"] == 2.0, fallbacks
    assert PASSWORD not in repr(logs)


async def test_a_slow_database_falls_back_within_the_ask_time_and_returns_when_it_answers(db: str) -> None:
    timing = BudgetTiming(ask=0.5, retry=0.5)
    a, b = budget(db, "office-a", rate=20.0, burst=42, timing=timing), budget(db, "office-b", rate=20.0, burst=42)
    blocker = await psycopg.AsyncConnection.connect(db, password=PASSWORD, autocommit=True)
    try:
        await b.take()  # both seen: the share is a half
        await a.take()
        assert a.bridges == 2
        with capture_logs() as logs:
            await blocker.execute("BEGIN")
            await blocker.execute("SELECT * FROM portal_budget FOR UPDATE")  # the row is held: every taker waits
            started = time.monotonic()
            await a.take()
            assert time.monotonic() - started < 0.5 + 1.0, "a request waits at most the ask time, then goes on"
            assert not a.shared
            await blocker.execute("ROLLBACK")

            async def shared_again() -> bool:
                await a.take()  # paced at the share until the retry time has passed, then asks the database
                return a.shared

            await eventually(shared_again, timeout=10)
        events = [e["event"] for e in logs if e["event"].startswith("budget.")]
        assert events == ["budget.fallback", "budget.restored"], events
        fallback = next(e for e in logs if e["event"] == "budget.fallback")
        assert fallback["bridges"] == 2 and fallback["rate"] == 10.0 and "error" in fallback
    finally:
        await blocker.close()
        await a.close()
        await b.close()


@contextlib.contextmanager
def socket_closed_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]  # bound, not listening: a connection is refused


async def test_two_clients_with_their_own_limiters_keep_to_one_portal_through_the_shared_budget(db: str) -> None:
    rate, burst = 20.0, 12
    async with Bitrix24Simulator(rate=rate, burst=burst) as sim:
        settings = Bitrix24Settings(webhook_url=Secret(sim.webhook_url), rate=rate, burst=burst)
        budgets = [budget(db, f"office-{n}", rate=rate, burst=burst) for n in range(2)]
        clients = [Bitrix24Client(settings, limiter=make_limiter(rate, burst), budget=b) for b in budgets]
        try:
            clients[0].assume_bucket_full()  # a delivery leader taking over: the shared row knows what was spent
            assert clients[0].bucket_level() == 0
            await asyncio.gather(*(c.call("user.get", {"ID": 1}) for c in clients for _ in range(30)))
        finally:
            for c in clients:
                await c.close()
            for b in budgets:
                await b.close()
        state = sim.state()
    assert state["counters"]["requests"] == 60
    assert state["counters"]["query_limit_exceeded"] == 0, "each client alone would let 10 go at once: 20 together"


async def test_a_server_clock_stepped_back_does_not_stall_the_budget(db: str) -> None:
    rate = 5.0
    b = budget(db, "office-a", rate=rate, burst=12)  # size 10
    admin = await psycopg.AsyncConnection.connect(db, password=PASSWORD, autocommit=True)
    try:
        await b.take()
        # as if the server's clock had been an hour ahead when the row was last written, and the bucket full
        await admin.execute("UPDATE portal_budget SET level = 10, at = clock_timestamp() + interval '1 hour'")
        started = time.monotonic()
        for _ in range(5):  # one slot without drain, then the drain goes on from the clock as it is now
            await b.take()
        took = time.monotonic() - started
    finally:
        await admin.close()
        await b.close()
    assert took < 2.0, f"5 requests took {took:.2f} s: the drain stopped (it would take 3 s)"
