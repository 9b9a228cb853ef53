"""The walk workload and the idle daemon (issue 14): CPU per call when an ``in_order`` queue walks its members,
and CPU per second when no call comes.

**Walk**: the first member rings one ring and does not answer, the second answers and talks. A real agent takes one
call at a time (a busy phone is skipped), so concurrent calls need agents of their own: the portal gets ``pairs``
extra employees, ``2xxx`` (never answers) and ``3xxx`` (answers after :data:`bench.stack.ANSWER_AFTER` s), and the
config one line ``7495200xxxx`` -> queue ``walk-xxx`` (``in_order``, one ring each, members ``[2xxx, 3xxx]``) per
pair. A call goes to a pair that has no call in progress.

**Idle**: the daemon with no calls, its Bitrix24 events in pull mode (a local application, ``event.offline.get``
once per ``poll_interval``), the production defaults for pings and the directory's refresh, and the bench's own
event-loop watcher off (it wakes 100 times a second).

Both run without that watcher: it is the bench's, not the daemon's, yet it runs in the daemon's process, and in the
walk it cost about 1.5 ms a call in December 2026 (neither phase reports the event loop's lag).
"""

from __future__ import annotations

import asyncio
import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.groups import FreeGroups, seed_with
from bench.load import STALLS, Steady, place_steadily, wait_for
from bench.probe import LatencyProbe
from bench.sizes import Sizes
from bench.stack import ANSWER_AFTER, SCALED, Bucket, Live, Workload, live_stack
from bridge.sim.asterisk import Answer, NeverAnswer
from bridge.sim.asterisk.parties import Party
from bridge.sim.bitrix24 import Bitrix24Simulator

WALK_RING = 2.0
"""``ring_seconds`` of the walk's config: the first member's one ring."""
SETTLE_TIMEOUT = 10.0
DRAIN_TIMEOUT = 60.0
"""Seconds after the last call's hold time for its calls to end and the journal to empty."""
IDLE_SETTLE = 2.0
"""Seconds the idle daemon is left alone after start-up (its first directory load, the first poll) before the
window opens."""


def pair_count(sizes: Sizes) -> int:
    """Enough pairs that a call always finds one free: calls overlap their neighbours by a ring at most."""
    return sizes.latency_calls * 3 // 2 + 10


def first_member(index: int) -> str:
    return f"2{index:03d}"


def second_member(index: int) -> str:
    return f"3{index:03d}"


def walk_line(index: int) -> str:
    return f"7495200{index:04d}"


def walk_agents(pairs: int) -> dict[str, int]:
    """Extension -> Bitrix24 user id of the walk's agents."""
    return {ext: offset + index for index in range(pairs)
            for offset, ext in ((1000, first_member(index)), (2000, second_member(index)))}  # fmt: skip


def walk_seed(pairs: int) -> dict[str, Any]:
    """The simulator's default portal plus two employees per pair, in department 2 (Sales)."""
    return seed_with(walk_agents(pairs), "Walk")


@dataclass
class WalkWorkload(Workload):
    """``pairs`` lines, each with its own ``in_order`` queue of two."""

    pairs: int = 1

    def tweak(self, data: dict[str, Any]) -> None:
        data["routing"]["ring_seconds"] = WALK_RING
        for ext, user in walk_agents(self.pairs).items():
            data["employees"]["map"][ext] = {"user_id": user}
        for index in range(self.pairs):
            name = f"walk-{index:03d}"
            data["queues"][name] = {"members": [first_member(index), second_member(index)],
                                    "distribution": "in_order", "rings_per_member": 1,
                                    "final": f"voicemail:{second_member(index)}"}  # fmt: skip
            data["lines"][walk_line(index)] = {"name": f"Walk {index}", "default_ext": first_member(index),
                                               "rules": [{"when": "always", "then": f"queue:{name}"}]}  # fmt: skip

    def seed(self) -> dict[str, Any] | None:
        return walk_seed(self.pairs)

    def parties(self) -> dict[str, Party]:
        out: dict[str, Party] = {}
        for index in range(self.pairs):
            out[first_member(index)] = NeverAnswer()
            out[second_member(index)] = Answer(after=ANSWER_AFTER)
        return out


def answered_by_second(crm: Bitrix24Simulator, pairs: int) -> int:
    """Calls the portal has finished as answered (200) by the second member of their pair."""
    seconds = {user for ext, user in walk_agents(pairs).items() if ext.startswith("3")}
    finished = (call.get("finish") or {} for call in crm.state()["calls"])
    return sum(1 for f in finished if str(f.get("STATUS_CODE")) == "200" and int(f.get("USER_ID") or 0) in seconds)


async def until_drained(live: Live, timeout: float) -> dict[str, Any] | None:
    """The daemon's figures once no call is in progress and its journal is empty; None if that took too long."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        figures = await live.stats()
        if int(figures["active"]) == 0 and int(figures["depth"]) == 0:
            return figures
        await asyncio.sleep(0.5)
    return None


async def walk(workdir: Path, sizes: Sizes, bucket: Bucket = SCALED) -> Steady:
    """``latency_calls`` walk calls in progress, each lasting about the hold time (one ring, the answer, the talk):
    ramp up for one hold time, then measure CPU (and the latency pairs) for another."""
    hold = sizes.latency_hold
    count = pair_count(sizes)
    workload = WalkWorkload(name="walk", pairs=count, watch_lag=False)
    talk = max(1.0, hold - WALK_RING - ANSWER_AFTER)
    async with live_stack(workdir, "paced", bucket, workload) as live:
        probe = LatencyProbe()
        probe.attach(live.pbx, live.crm)
        pairs = FreeGroups.of(count, walk_line)
        at_start = await live.stats()
        placing = asyncio.create_task(place_steadily(live, pairs, 3, sizes.latency_calls / hold, talk))
        try:
            await asyncio.sleep(hold)
            first, before, started = await live.stats(), live.portal_counters(), time.monotonic()
            await asyncio.sleep(hold)
            last, after, ended = await live.stats(), live.portal_counters(), time.monotonic()
        finally:
            placing.cancel()
            placed = await placing
        await wait_for(lambda: probe.unmatched(started, ended) == 0, SETTLE_TIMEOUT)
        samples = probe.samples(started, ended)
        ends = sum(1 for (kind, _), at in probe.events.items() if kind == "end" and started <= at < ended)
        drained = await until_drained(live, hold + DRAIN_TIMEOUT)
        answered = answered_by_second(live.crm, count)
        return Steady(
            mode="paced",
            bucket=bucket,
            target_calls=sizes.latency_calls,
            active=(int(first["active"]), int(last["active"])),
            samples_ms=[s.ms for s in samples],
            unmatched=probe.unmatched(started, ended),
            cpu_seconds=float(last["cpu_s"]) - float(first["cpu_s"]),
            calls_ended=ends,
            requests=after["requests"] - before["requests"],
            query_limit_exceeded=after["query_limit_exceeded"] - before["query_limit_exceeded"],
            stalls={name: float(last[name]) for name in STALLS},
            refused_in_phase=live.portal_counters()["query_limit_exceeded"],
            placed=placed,
            workload="walk",
            skipped=pairs.busy_skips,
            answered_second=answered,
            whole_cpu_seconds=float(drained["cpu_s"]) - float(at_start["cpu_s"]) if drained else float("nan"),
        )


@dataclass
class IdleWorkload(Workload):
    """Pull mode through a local application, production timers, no load generator in the daemon."""

    def tweak(self, data: dict[str, Any]) -> None:
        for key in ("ping_interval", "reconnect_max_delay"):
            data["asterisk"].pop(key, None)
        for key in ("directory_refresh", "availability_ttl"):
            data["bitrix24"].pop(key, None)
        data["bitrix24"]["events"] = "pull"


IDLE = IdleWorkload(name="idle", auth="oauth", watch_lag=False)


@dataclass
class Idle:
    seconds: float
    cpu_seconds: float
    requests: int
    """Requests the portal answered in the window (the offline-event polls)."""
    poll_interval: float

    @property
    def ms_per_second(self) -> float:
        return self.cpu_seconds / self.seconds * 1000 if self.seconds else float("nan")


async def idle(workdir: Path, sizes: Sizes, bucket: Bucket = SCALED) -> Idle:
    """The daemon's CPU over ``idle_seconds`` with nothing to do but poll and ping."""
    workload = copy.copy(IDLE)
    async with live_stack(workdir, "paced", bucket, workload) as live:
        await asyncio.sleep(IDLE_SETTLE)
        first, before, started = await live.stats(), live.portal_counters(), time.monotonic()
        await asyncio.sleep(sizes.idle_seconds)
        last, after, ended = await live.stats(), live.portal_counters(), time.monotonic()
        return Idle(
            seconds=ended - started,
            cpu_seconds=float(last["cpu_s"]) - float(first["cpu_s"]),
            requests=after["requests"] - before["requests"],
            poll_interval=float(last.get("poll_interval", 0.0)),
        )
