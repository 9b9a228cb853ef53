"""How big each measurement is: ``--quick`` (a couple of minutes) and the full run (the tracker's numbers)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    name: str
    core_seconds: float
    """How long the pure core is stepped."""
    saturation_rate: float
    """Calls per second offered while the portal is saturated (4 commands a call: 1.2x the real ceiling at 30)."""
    saturation_window: float
    """Seconds measured once the portal's bucket is full."""
    saturation_warmup: float
    """At most this long to wait for the bucket to fill first (the load's first seconds always)."""
    latency_calls: int
    """Concurrent calls while event-to-request latency and CPU are measured."""
    latency_hold: float
    """Seconds each of those calls lasts; the ramp and the measured steady window take this long each."""
    memory_calls: int
    """Concurrent calls at the RSS sample."""
    memory_rate: float
    """Calls per second while ramping up to ``memory_calls``."""
    replay_calls: int
    """Journaled offline calls replayed."""
    naive_replay_budget: float
    """Seconds the one-command-per-request replay may run before it is cut short (and projected)."""
    idle_seconds: float
    """Seconds the quiet daemon's CPU is measured over."""


QUICK = Sizes(
    name="quick",
    core_seconds=1.0,
    saturation_rate=30.0,
    saturation_window=6.0,
    saturation_warmup=20.0,
    latency_calls=20,
    latency_hold=5.0,
    memory_calls=200,
    memory_rate=40.0,
    replay_calls=1000,
    naive_replay_budget=5.0,
    idle_seconds=4.0,
)

FULL = Sizes(
    name="full",
    core_seconds=5.0,
    saturation_rate=30.0,
    saturation_window=45.0,
    saturation_warmup=30.0,
    latency_calls=200,
    latency_hold=45.0,
    memory_calls=2000,
    memory_rate=20.0,
    replay_calls=10_000,
    naive_replay_budget=60.0,
    idle_seconds=60.0,
)
