"""A call's PBX commands run in the order the core gave them, one failing does not stop the next, and a call that
ended still gets the commands it was given before its end (hang up the caller, stop the music) but no later one."""

from __future__ import annotations

import asyncio

import structlog

from bridge.dispatch.executor import CallExecutor
from bridge.domain.commands import HangupCaller, PbxCommand, StartMusic, StopMusic


class SlowPbx:
    def __init__(self) -> None:
        self.done: list[str] = []
        self.release = asyncio.Event()

    async def execute(self, call_id: str, cmd: PbxCommand) -> None:
        if isinstance(cmd, StartMusic):
            await self.release.wait()  # the PBX is slow with the first command
        if isinstance(cmd, StopMusic):
            raise RuntimeError("no such channel")
        self.done.append(f"{call_id}:{type(cmd).__name__}")


async def test_commands_run_in_order_and_a_failure_does_not_stop_the_next() -> None:
    pbx, failures = SlowPbx(), []
    executor = CallExecutor("c1", pbx, lambda key, cmd, exc: failures.append((key, type(cmd).__name__, str(exc))))
    executor.submit(StartMusic())
    executor.submit(StopMusic())
    executor.submit(HangupCaller("normal"))
    await asyncio.sleep(0.01)
    assert pbx.done == [], "nothing overtakes the slow first command"
    executor.close()
    executor.submit(StartMusic())  # after the end: never carried out
    pbx.release.set()
    await executor.drain(grace=5.0)
    assert pbx.done == ["c1:StartMusic", "c1:HangupCaller"]
    assert failures == [("c1", "StopMusic", "no such channel")]


async def test_an_idle_call_takes_new_commands_and_drains_at_once() -> None:
    pbx = SlowPbx()
    pbx.release.set()
    executor = CallExecutor("c2", pbx, lambda key, cmd, exc: None)
    executor.submit(HangupCaller("normal"))
    await asyncio.sleep(0.01)
    executor.submit(StartMusic())
    await asyncio.sleep(0.01)
    assert pbx.done == ["c2:HangupCaller", "c2:StartMusic"]
    await asyncio.wait_for(executor.drain(grace=5.0), 1.0)


async def test_a_command_that_outlasts_the_grace_is_cancelled() -> None:
    pbx = SlowPbx()
    executor = CallExecutor("c3", pbx, lambda key, cmd, exc: None)
    executor.submit(StartMusic())
    await asyncio.sleep(0.01)
    await executor.drain(grace=0.05)
    await asyncio.sleep(0.01)
    pbx.release.set()
    await asyncio.sleep(0.01)
    assert pbx.done == []


async def test_every_command_logs_with_the_calls_binding_even_one_submitted_later_outside_it() -> None:
    """The log lines of a call's PBX commands name its call and line (``bind_call``), also for a command given after
    the executor had gone idle, from code that had no call bound."""
    seen: list[dict[str, object]] = []

    class ContextPbx:
        async def execute(self, call_id: str, cmd: PbxCommand) -> None:
            seen.append(dict(structlog.contextvars.get_contextvars()))

    with structlog.contextvars.bound_contextvars(call_id="c4", line="74951112233"):
        executor = CallExecutor("c4", ContextPbx(), lambda key, cmd, exc: None)
        executor.submit(StartMusic())
    await asyncio.sleep(0.01)
    executor.submit(HangupCaller("normal"))  # no call bound here: the executor idle, its first task gone
    await executor.drain(grace=5.0)
    assert seen == [{"call_id": "c4", "line": "74951112233"}] * 2
