"""RSS per active call: the daemon's resident memory with ``memory_calls`` calls in progress, over its baseline.

The baseline is taken after a few whole calls (so that everything a call touches is imported and warmed up) with
no call in progress; then calls arrive at ``memory_rate`` and stay connected until the sample, taken once the
daemon holds them all and has mirrored what they produced so far.

Each call has an agent of its own (:mod:`bench.groups`, groups of one: ``memory_calls`` calls talking at once need
as many agents, and at the sample a call of a four-agent group holds the same channels: the caller's and the one
agent's who answered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.groups import FreeGroups, GroupWorkload
from bench.load import REACHED, place_steadily
from bench.sizes import Sizes
from bench.stack import SCALED, Bucket, Live, live_stack

WARMUP_CALLS = 20
WARMUP_TALK = 0.2
HOLD_FOREVER = 3600.0
SETTLE_TIMEOUT = 60.0
DRAIN_TIMEOUT = 10.0
STATS_EVERY = 0.5


@dataclass
class Memory:
    mode: str
    bucket: Bucket
    target_calls: int
    active: int
    baseline_kib: int
    loaded_kib: int
    settled: bool
    """The journal was drained when the sample was taken (False: sampled with a backlog after the timeout)."""
    refused_in_phase: int = 0
    """503 ``QUERY_LIMIT_EXCEEDED`` answers over the whole phase."""
    skipped: int = 0
    """Calls not placed for want of a free agent (should stay 0)."""

    @property
    def reached(self) -> bool:
        return self.active >= REACHED * self.target_calls

    @property
    def per_call_kib(self) -> float:
        return (self.loaded_kib - self.baseline_kib) / self.active if self.active else float("nan")


async def settle(live: Live, done: Callable[[dict[str, Any]], bool], timeout: float) -> tuple[bool, dict[str, Any]]:
    """Ask the daemon for its figures until ``done(figures)``; (False, last figures) after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    figures = await live.stats()
    while not done(figures):
        if loop.time() > deadline:
            return False, figures
        await asyncio.sleep(STATS_EVERY)
        figures = await live.stats()
    return True, figures


async def memory(workdir: Path, mode: str, sizes: Sizes, bucket: Bucket = SCALED) -> Memory:
    workload = GroupWorkload(name="memory", groups=sizes.memory_calls + WARMUP_CALLS, size=1)
    async with live_stack(workdir, mode, bucket, workload) as live:
        groups = FreeGroups.of(workload.groups)
        await place_steadily(live, groups, 3, sizes.memory_rate, WARMUP_TALK, limit=WARMUP_CALLS)
        _, idle = await settle(live, lambda f: f["active"] == 0 and f["depth"] == 0, SETTLE_TIMEOUT)
        await place_steadily(live, groups, 4, sizes.memory_rate, HOLD_FOREVER, limit=sizes.memory_calls)
        await settle(live, lambda f: f["active"] >= sizes.memory_calls, SETTLE_TIMEOUT)
        settled, loaded = await settle(live, lambda f: f["depth"] == 0, DRAIN_TIMEOUT)
        return Memory(
            mode=mode,
            bucket=bucket,
            target_calls=sizes.memory_calls,
            active=int(loaded["active"]),
            baseline_kib=int(idle["rss_kib"]),
            loaded_kib=int(loaded["rss_kib"]),
            settled=settled,
            refused_in_phase=live.portal_counters()["query_limit_exceeded"],
            skipped=groups.busy_skips,
        )
