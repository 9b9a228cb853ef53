"""Events per second through the pure call core (``bridge.domain.call.step``), nothing else.

The inputs are whole calls of the built-in call centre, as ``b24-bridge explain`` walks them (lookups, rings,
answers, IVR keys, voicemail, hang-ups, timers): every ``(call, event, now)`` the core is stepped with is
recorded once, then the recorded steps are replayed through ``step`` for ``core_seconds``. ``step`` is pure,
so replaying an input does exactly the work the daemon's dispatcher makes it do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from bridge.config import parse_settings
from bridge.domain import simulation
from bridge.domain.call import step
from bridge.domain.events import Event
from bridge.domain.scheme import Plan
from bridge.domain.state import Call, Step
from bridge.sim.stage import demo_routing

SALES, SUPPORT_IVR, SUPPORT_ALL, NIGHT = "74951112233", "74951112244", "74951112255", "74951112266"
SCENARIOS: tuple[dict[str, Any], ...] = (
    {"line": SALES, "caller": "79990000001", "answers": {"1001": 0.6}, "talk": 60.0},
    {"line": SALES, "caller": "79990000002", "answers": {"1002": 0.4}, "responsible": "1002", "talk": 90.0},
    {"line": SALES, "caller": "79990000003", "answers": {}, "hangup": 120.0},
    {"line": SALES, "caller": "79990000004", "answers": {"1004": 0.9}, "hangup": 4.0},
    {"line": SUPPORT_IVR, "caller": "79990000005", "answers": {"1003": 0.7}, "press": "1", "talk": 45.0},
    {"line": SUPPORT_ALL, "caller": "79990000006", "answers": {"1006": 0.8, "1002": 0.9}, "talk": 30.0},
    {"line": NIGHT, "caller": "79990000007", "answers": {}, "hangup": 20.0},
)
"""An answered call, a known client's manager, nobody answers (voicemail), a caller who gives up while the walk
goes on, an IVR choice, a queue that rings everybody, a closed line. (The demo rings each agent for 1 s.)"""

Input = tuple[Call, Event, datetime]


def demo_plan() -> Plan:
    data = demo_routing()
    data["asterisk"] = {"ari_url": "http://127.0.0.1:9", "ari_password": "unused", "ami_secret": "unused"}
    data["bitrix24"] = {"webhook_url": "http://127.0.0.1:9/rest/1/unused/", "application_token": "unused"}
    return parse_settings(data, path=Path("bench.toml"), env={}).plan


def recorded_inputs(plan: Plan, at: datetime) -> list[Input]:
    """Every step the core takes for the scenarios, in order."""
    inputs: list[Input] = []

    def recording(call: Call, event: Event, now: datetime) -> Step:
        inputs.append((call, event, now))
        return step(call, event, now)

    with mock.patch.object(simulation, "step", recording):
        for scenario in SCENARIOS:
            simulation.explain(plan, at=at, **scenario)
    return inputs


@dataclass
class CoreSpeed:
    events: int
    seconds: float
    calls: int
    """Whole calls per replay of the recorded inputs."""
    steps_per_call: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def core_speed(seconds: float, at: datetime | None = None) -> CoreSpeed:
    """Step the recorded inputs through the core for ``seconds`` of this process's CPU time (one thread, nothing
    else running in it), so that other programs on the machine slow the run down but do not change the figure."""
    inputs = recorded_inputs(demo_plan(), at or datetime(2026, 3, 2, 11, 0, tzinfo=UTC))
    events = 0
    started = time.process_time()
    while True:
        for call, event, now in inputs:
            step(call, event, now)
        events += len(inputs)
        elapsed = time.process_time() - started
        if elapsed >= seconds:
            return CoreSpeed(events, elapsed, len(SCENARIOS), len(inputs) / len(SCENARIOS))
