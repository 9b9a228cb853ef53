"""Live load against the real daemon: the portal saturated, and latency and CPU at a steady number of calls.

Every call comes in on the line of a group of agents of its own (:mod:`bench.groups`: a real agent takes one call at
a time; four in the steady phase, two in saturation); they ring at once, answer after 0.2 s, and the caller hangs up
``talk`` seconds after being connected. That mirrors as four commands (``register``, ``show``, ``hide``, ``finish``)
while the call's ``register`` goes through within the daemon's ``register_timeout`` (5 s); a call whose register
waited longer is mirrored offline after its end (statistics check, ``register`` SHOW=0, ``finish``).

A phase that falls short of the load it describes says so (:attr:`Steady.reached`, :attr:`Saturation.reached`):
the report then reads NOT REACHED instead of a verdict.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.groups import FreeGroups, GroupWorkload, groups_for
from bench.probe import LatencyProbe, percentile
from bench.sizes import Sizes
from bench.stack import ANSWER_AFTER, SCALED, STANDARD, Bucket, Live, live_stack
from bridge.crm.pacing import SAFETY_MARGIN

POLL = 0.05
SATURATION_TALK = 0.5
SATURATION_AGENTS = 2
SATURATION_LEAD = 10.0
"""Seconds of load before the window may open: the daemon's start-up requests (the directory's pages, the first
availability checks) fill the bucket alone; the window waits for the load to fill it again."""
SETTLE_TIMEOUT = 10.0
STALLS = ("lag_p99_ms", "lag_max_ms", "gc_max_ms", "append_max_ms", "sync_max_ms")
REACHED = 0.9
"""A phase whose calls in progress stay below this share of its target did not reach its load."""
REGISTER_WAIT = 5.0
"""The bench config's ``register_timeout``: how long a saturated portal can hold up a call's ringing."""


def bucket_filled(live: Live, bucket: Bucket) -> asyncio.Event:
    """Set once a request the portal takes lifts its bucket to one request below where our client-side twin stops
    (``burst`` minus its safety margin): from then on every request waits for the bucket."""
    portal_bucket = live.crm.core.bucket
    take = portal_bucket.try_add
    full = asyncio.Event()

    def watched() -> bool:
        taken = take()
        if taken and portal_bucket.level >= bucket.burst - SAFETY_MARGIN - 1:
            full.set()
        return taken

    portal_bucket.try_add = watched  # type: ignore[method-assign]
    return full


def caller_number(phase: int, index: int) -> str:
    """Unique, well-formed Russian mobile numbers per phase: ``79<phase><8 digits>``."""
    return f"79{phase}{index:08d}"


async def place_steadily(
    live: Live, groups: FreeGroups, phase: int, rate: float, talk: float, limit: int | None = None
) -> int:
    """Offer a call every ``1/rate`` s (on schedule, not drifting) to a free group until cancelled or ``limit``
    offers; returns how many were placed (``groups.busy_skips`` counts the others; cancelling it is how a phase
    stops the load, so the cancellation ends here)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    index = placed = 0
    try:
        while limit is None or index < limit:
            placed += await groups.place(live, caller_number(phase, index), talk)
            index += 1
            await asyncio.sleep(max(0.0, started + index / rate - loop.time()))
    except asyncio.CancelledError:
        pass
    return placed


async def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    """Poll ``check()`` until true; False when ``timeout`` s passed first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(POLL)
    return True


def saturation_workload(sizes: Sizes) -> GroupWorkload:
    """Pairs of agents ringing at once for the calls in progress: a call rings once its register is through or
    ``register_timeout`` passed, then talks. A pair makes the same four commands a call as four agents (``show``
    and ``hide`` name every agent in one command) and no more agents than needed: each costs the portal's bucket
    its share of the directory's pages and of the availability checks (a batch per 250 agents, 49 with time
    tracking, per ``availability_ttl``), requests that carry one command."""
    in_progress = sizes.saturation_rate * (ANSWER_AFTER + SATURATION_TALK + REGISTER_WAIT)
    return GroupWorkload(name="saturation", groups=math.ceil(in_progress) + 10, size=SATURATION_AGENTS)


def steady_workload(sizes: Sizes) -> GroupWorkload:
    """Groups of four for ``latency_calls`` calls in progress (calls overlap their neighbours by a ring at most)."""
    return GroupWorkload(name="everybody", groups=groups_for(sizes.latency_calls))


@dataclass
class Saturation:
    mode: str
    bucket: Bucket
    offered_rate: float
    window: float
    requests: int
    commands: int
    query_limit_exceeded: int
    saturated: bool
    """The portal's bucket was full when the window began."""
    refused_in_phase: int = 0
    """503 ``QUERY_LIMIT_EXCEEDED`` answers over the whole phase (start-up and warm-up included)."""
    placed: int = 0
    """Calls placed over the whole phase."""
    skipped: int = 0
    """Calls not placed because every group had a call in progress (should stay 0)."""
    peak: int = 0
    """The most calls in progress at once (as the bench placed and saw them end)."""

    @property
    def reached(self) -> bool:
        """The portal was saturated: its bucket full when the window began."""
        return self.saturated

    @property
    def commands_per_request(self) -> float:
        return self.commands / self.requests if self.requests else 0.0

    @property
    def throughput(self) -> float:
        """Commands the portal carried out per second, as a fraction of its ceiling (rate x 50)."""
        return self.commands / self.window / self.bucket.ceiling if self.window else 0.0


async def saturation(workdir: Path, mode: str, sizes: Sizes) -> Saturation:
    """Offer more than the portal takes; once its bucket is full, count what it took for a window."""
    bucket = STANDARD
    workload = saturation_workload(sizes)
    async with live_stack(workdir, mode, bucket, workload) as live:
        filled = bucket_filled(live, bucket)
        groups = FreeGroups.of(workload.groups)
        placing = asyncio.create_task(place_steadily(live, groups, 1, sizes.saturation_rate, SATURATION_TALK))
        try:
            lead = min(SATURATION_LEAD, sizes.saturation_warmup / 2)
            await asyncio.sleep(lead)
            filled.clear()
            full = await wait_for(filled.is_set, sizes.saturation_warmup - lead)
            before, started = live.portal_counters(), time.monotonic()
            await asyncio.sleep(sizes.saturation_window)
            after, window = live.portal_counters(), time.monotonic() - started
        finally:
            placing.cancel()
            placed = await placing
        refused = live.portal_counters()["query_limit_exceeded"]
    return Saturation(
        mode=mode,
        bucket=bucket,
        offered_rate=sizes.saturation_rate,
        window=window,
        requests=after["requests"] - before["requests"],
        commands=after["commands"] - before["commands"],
        query_limit_exceeded=after["query_limit_exceeded"] - before["query_limit_exceeded"],
        saturated=full,
        refused_in_phase=refused,
        placed=placed,
        skipped=groups.busy_skips,
        peak=groups.peak,
    )


@dataclass
class Steady:
    mode: str
    bucket: Bucket
    target_calls: int
    active: tuple[int, int]
    """Calls the daemon had in progress at the start and the end of the window."""
    samples_ms: list[float] = field(default_factory=list)
    unmatched: int = 0
    cpu_seconds: float = 0.0
    calls_ended: int = 0
    requests: int = 0
    query_limit_exceeded: int = 0
    stalls: dict[str, float] = field(default_factory=dict)
    """The daemon's event loop lag (p99, max), longest GC pause, slowest journal append and slowest journal fsync
    over the window, ms."""
    refused_in_phase: int = 0
    """503 ``QUERY_LIMIT_EXCEEDED`` answers over the whole phase."""
    placed: int = 0
    """Calls placed over the whole phase (ramp, window and the calls still ringing when it ended)."""
    workload: str = "everybody"
    skipped: int = 0
    """Calls not placed because every group (the walk: pair) of agents had a call (should stay 0)."""
    answered_second: int = 0
    """Calls of the phase the portal finished as answered by the second member (the walk)."""
    whole_cpu_seconds: float = float("nan")
    """The daemon's CPU from before the first call until every call ended and the journal emptied (the walk): a
    cross-check of the window's figure that no backlog can move out of the count."""

    @property
    def reached(self) -> bool:
        """The daemon had at least :data:`REACHED` of the target's calls in progress at both ends of the window."""
        return min(self.active) >= REACHED * self.target_calls

    @property
    def whole_cpu_ms_per_call(self) -> float:
        return self.whole_cpu_seconds / self.placed * 1000 if self.placed else float("nan")

    @property
    def p50(self) -> float:
        return percentile(self.samples_ms, 0.50)

    @property
    def p99(self) -> float:
        return percentile(self.samples_ms, 0.99)

    @property
    def cpu_ms_per_call(self) -> float:
        """The daemon's CPU seconds over the window per call ended in it, in ms (= seconds per 1,000 calls)."""
        return self.cpu_seconds / self.calls_ended * 1000 if self.calls_ended else float("nan")


async def steady(workdir: Path, mode: str, sizes: Sizes, bucket: Bucket = SCALED) -> Steady:
    """``latency_calls`` calls in progress: ramp up for one hold time, then measure for another."""
    hold = sizes.latency_hold
    workload = steady_workload(sizes)
    async with live_stack(workdir, mode, bucket, workload) as live:
        probe = LatencyProbe()
        probe.attach(live.pbx, live.crm)
        groups = FreeGroups.of(workload.groups)
        placing = asyncio.create_task(place_steadily(live, groups, 2, sizes.latency_calls / hold, hold))
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
        return Steady(
            mode=mode,
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
            skipped=groups.busy_skips,
        )
