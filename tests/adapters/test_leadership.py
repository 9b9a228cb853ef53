"""Leadership through advisory locks on a real PostgreSQL: one holder, takeover within seconds, step-down."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest
from structlog.testing import capture_logs

from bridge.leadership import Lease, LeaseTiming, Role
from tests.eventually import eventually

FAST = LeaseTiming(retry=0.1, probe=0.5, connect=5.0)


def lease(url: str, bridge: str, role: Role = Role.DELIVERY, scope: str = "portal.example") -> Lease:
    return Lease(url, role, scope, bridge, password=os.environ["B24_TEST_PG_PASSWORD"], timing=FAST)


class Work:
    """A role's work that records who runs it and when it was stopped."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.finish: dict[str, asyncio.Event] = {}

    def of(self, bridge: str) -> Callable[[], Awaitable[None]]:
        async def lead() -> None:
            self.running.add(bridge)
            self.started.append(bridge)
            self.finish[bridge] = asyncio.Event()
            try:
                await self.finish[bridge].wait()
            except asyncio.CancelledError:
                self.cancelled.append(bridge)
                raise
            finally:
                self.running.discard(bridge)

        return lead


@pytest.fixture
async def tasks() -> AsyncIterator[list[asyncio.Task[None]]]:
    started: list[asyncio.Task[None]] = []
    yield started
    for task in started:
        task.cancel()
    await asyncio.gather(*started, return_exceptions=True)


async def test_one_holder_and_the_other_takes_over_when_it_stops(pg_url: str, tasks: list[asyncio.Task[None]]) -> None:
    work = Work()
    a, b = lease(pg_url, "a"), lease(pg_url, "b")
    with capture_logs() as logs:
        tasks.append(asyncio.create_task(a.run(work.of("a"))))
        await eventually(lambda: work.running == {"a"})
        tasks.append(asyncio.create_task(b.run(work.of("b"))))
        await eventually(lambda: b.holder == "a", message="the waiter names the holder")
        assert work.running == {"a"} and (a.state, b.state) == ("leader", "standby")
        tasks[0].cancel()  # a stops (SIGTERM): its session closes, the lock is free
        began = time.monotonic()
        await eventually(lambda: work.running == {"b"})
    assert time.monotonic() - began < 3.0
    assert work.started == ["a", "b"] and work.cancelled == ["a"]
    waiting = [e for e in logs if e["event"] == "leadership.waiting"]
    assert waiting and waiting[0]["holder"] == "a"
    assert [e["bridge"] for e in logs if e["event"] == "leadership.acquired"] == ["a", "b"]


async def test_roles_and_scopes_are_separate_locks(pg_url: str, tasks: list[asyncio.Task[None]]) -> None:
    work = Work()
    for bridge, role, scope in [("d", Role.DELIVERY, "p"), ("x", Role.PBX, "p"), ("y", Role.PBX, "office-2")]:
        tasks.append(asyncio.create_task(lease(pg_url, bridge, role, scope).run(work.of(bridge))))
    await eventually(lambda: work.running == {"d", "x", "y"})


async def test_a_dropped_connection_stops_the_work_at_once_and_the_waiter_takes_over(
    pg_url: str, tasks: list[asyncio.Task[None]]
) -> None:
    work = Work()
    a, b = lease(pg_url, "a"), lease(pg_url, "b")
    tasks.append(asyncio.create_task(a.run(work.of("a"))))
    await eventually(lambda: work.running == {"a"})
    tasks.append(asyncio.create_task(b.run(work.of("b"))))
    await eventually(lambda: b.holder == "a")
    with capture_logs() as logs:
        async with await psycopg.AsyncConnection.connect(
            pg_url, password=os.environ["B24_TEST_PG_PASSWORD"], autocommit=True
        ) as admin:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                                ("b24-bridge a",))  # fmt: skip
        await eventually(lambda: "a" in work.cancelled and work.running == {"b"}, timeout=10)
        await eventually(lambda: a.holder == "b", message="a is a standby now", timeout=10)
    assert work.started == ["a", "b"]
    lost = [e for e in logs if e["event"] == "leadership.lost"]
    assert lost and lost[0]["role"] == "delivery"


async def test_work_that_ends_by_itself_steps_down_and_lets_the_other_lead(
    pg_url: str, tasks: list[asyncio.Task[None]]
) -> None:
    work = Work()
    a, b = lease(pg_url, "a", Role.PBX, "office-1"), lease(pg_url, "b", Role.PBX, "office-1")
    tasks.append(asyncio.create_task(a.run(work.of("a"))))
    await eventually(lambda: work.running == {"a"})
    tasks.append(asyncio.create_task(b.run(work.of("b"))))
    await eventually(lambda: b.holder == "a")
    with capture_logs() as logs:
        work.finish["a"].set()  # e.g. a's ARI application was replaced
        await eventually(lambda: work.running == {"b"})
    assert work.started == ["a", "b"] and not work.cancelled
    assert [e["role"] for e in logs if e["event"] == "leadership.stepped_down"] == ["pbx"]


async def test_an_unreachable_database_is_logged_once_without_the_password(tasks: list[asyncio.Task[None]]) -> None:
    work = Work()
    secret = "s3cret-pg-pass"
    with capture_logs() as logs:
        dead = Lease("postgresql://bridge@127.0.0.1:1/b24", Role.DELIVERY, "p", "a", password=secret, timing=FAST)
        tasks.append(asyncio.create_task(dead.run(work.of("a"))))
        await eventually(lambda: any(e["event"] == "leadership.db_unreachable" for e in logs))
        await asyncio.sleep(0.3)  # a few more attempts: still one line, nothing runs
    unreachable = [e for e in logs if e["event"] == "leadership.db_unreachable"]
    assert len(unreachable) == 1 and secret not in str(unreachable)
    assert not work.started and dead.state == "standby"


HOLDER_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from bridge.leadership import Lease, LeaseTiming, Role

    async def lead() -> None:
        print("leading", flush=True)
        await asyncio.Event().wait()

    asyncio.run(Lease(sys.argv[1], Role.DELIVERY, "portal.example", "child", password=sys.argv[2],
                      timing=LeaseTiming(retry=0.1, probe=0.5)).run(lead))
    """
)


async def test_kill_9_of_the_holder_frees_the_role_within_seconds(pg_url: str, tasks: list[asyncio.Task[None]]) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER_SCRIPT, pg_url, os.environ["B24_TEST_PG_PASSWORD"], stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        while (line := await asyncio.wait_for(child.stdout.readline(), 30)) != b"leading\n":  # past its log lines
            assert line, "the child exited before it led"
        work = Work()
        b = lease(pg_url, "b")
        tasks.append(asyncio.create_task(b.run(work.of("b"))))
        await eventually(lambda: b.holder == "child")
        child.kill()
        await child.wait()
        began = time.monotonic()
        await eventually(lambda: work.running == {"b"})
        assert time.monotonic() - began < 3.0
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
