"""Shutting the dispatcher down while many calls' PBX commands hang: one grace for all, not one per call."""

from __future__ import annotations

import asyncio
import time

from bridge.config import load_config
from bridge.dispatch.dispatcher import Dispatcher
from bridge.domain.commands import CrmCommand, PbxCommand, StartMusic
from bridge.ops.metrics import Metrics
from tests.eventually import eventually
from tests.fuzz.strategies import EXAMPLE_CONFIG


class HangingPbx:
    """A PBX that never answers a command."""

    def __init__(self) -> None:
        self.started = 0

    async def execute(self, call_id: str, cmd: PbxCommand) -> None:
        self.started += 1
        await asyncio.Event().wait()


class NoOutbox:
    def append(self, cmd: CrmCommand, *, linkedid: str = "", pbx_call: str = "", line: str = "") -> int:
        return 0


async def nobody(phone: str) -> None:
    return None


async def test_close_drains_every_calls_executor_within_one_grace() -> None:
    plan = load_config(EXAMPLE_CONFIG).plan
    pbx = HangingPbx()
    dispatcher = Dispatcher(
        plan=lambda: plan, pbx=pbx, outbox=NoOutbox(), outbox_changed=lambda: None, lookup=nobody, metrics=Metrics()
    )
    for n in range(5):
        dispatcher.submit(f"call-{n}", StartMusic())
    await eventually(lambda: pbx.started == 5)
    began = time.monotonic()
    await asyncio.wait_for(dispatcher.close(), 8.0)
    assert time.monotonic() - began < 4.0, "executors were drained one after another"
