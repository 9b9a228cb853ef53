"""Shutdown never hangs on a task that lost its cancellation (Python 3.11's ``asyncio.wait_for`` drops one that
meets a result: recovery's look went on and the daemon's stop waited for it for ever)."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

import bridge.daemon
from bridge.daemon import Daemon


def bare_daemon(tasks: list[asyncio.Task[None]]) -> Daemon:
    daemon = Daemon.__new__(Daemon)  # only its task list matters here
    daemon._tasks = tasks
    return daemon


async def swallowing(times: int, stop: asyncio.Event) -> None:
    """Loses ``times`` cancellations, as a look whose answer met the cancel does, and ends when ``stop`` is set."""
    lost = 0
    while True:
        try:
            await stop.wait()
            return
        except asyncio.CancelledError:
            lost += 1
            if lost > times:
                raise


async def test_a_task_that_lost_a_cancellation_is_cancelled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge.daemon, "STOP_ROUND_SECONDS", 0.1)
    stop = asyncio.Event()
    recovery = asyncio.create_task(swallowing(1, stop), name="recovery")
    quiet = asyncio.create_task(asyncio.sleep(3600), name="directory")
    await asyncio.sleep(0)
    with capture_logs() as logs:
        await asyncio.wait_for(bare_daemon([quiet, recovery])._stop_tasks(), 2.0)
    assert recovery.cancelled() and quiet.cancelled()
    assert not [e for e in logs if e["event"] == "daemon.tasks_stuck"]


async def test_a_task_that_never_stops_is_named_and_left_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge.daemon, "STOP_ROUND_SECONDS", 0.1)
    stop = asyncio.Event()
    stuck = asyncio.create_task(swallowing(10, stop), name="recovery")
    await asyncio.sleep(0)
    with capture_logs() as logs:
        await asyncio.wait_for(bare_daemon([stuck])._stop_tasks(), 2.0)
    assert [e["tasks"] for e in logs if e["event"] == "daemon.tasks_stuck"] == [["recovery"]]
    stop.set()
    await stuck
