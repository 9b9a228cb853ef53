"""The Asterisk simulator on 127.0.0.1 and a raw ARI client of its ``b24bridge`` application, for the simulator's
own tests (a module that needs another set-up defines its own ``sim`` or ``ari``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.sim.asterisk import AsteriskSimulator
from tests.eventually import eventually
from tests.sim.asterisk_clients import AriWire


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[AsteriskSimulator]:
    async with AsteriskSimulator(media_seconds=0.05, recordings_dir=tmp_path) as simulator:
        yield simulator


@pytest.fixture
async def ari(sim: AsteriskSimulator) -> AsyncIterator[AriWire]:
    wire = AriWire(sim.ari_url, "b24bridge", "ari-secret")
    await wire.open()
    await eventually(lambda: sim.bus.is_active("b24bridge"))
    yield wire
    await wire.close()
