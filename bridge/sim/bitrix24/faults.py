"""Injected failures: a timed outage, a random error rate, added latency."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.sim.bitrix24 import errors
from bridge.sim.bitrix24.errors import RestError

# What an injected error looks like on the wire. "502" is an nginx HTML page; "close" drops the
# connection without an answer; the others are Bitrix24's JSON errors.
ERROR_KINDS = ("500", "502", "503", "429", "401", "close")
OUTAGE_MODES = ("close", "502")


def injected_error(kind: str) -> RestError:
    """The JSON error for an error kind (not for "502"/"close", which have no JSON)."""
    if kind == "500":
        return errors.internal_error()
    if kind == "503":
        return errors.query_limit()
    if kind == "429":
        return errors.operation_time_limit()
    if kind == "401":
        return errors.expired_token()
    raise ValueError(f"no JSON error for kind {kind!r}")


@dataclass
class FaultPlan:
    outage_until: float | None = None
    outage_mode: str = "close"
    error_rate: float = 0.0
    error_kinds: tuple[str, ...] = ("500", "503", "429")
    latency: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    def describe(self, now: float) -> dict[str, Any]:
        remaining = None if self.outage_until is None else max(0.0, self.outage_until - now)
        return {
            "outage_remaining": remaining,
            "outage_mode": self.outage_mode,
            "error_rate": self.error_rate,
            "error_kinds": list(self.error_kinds),
            "latency": self.latency,
        }


def build_plan(
    now: float,
    outage_seconds: float | None = None,
    error_rate: float = 0.0,
    error_kinds: Iterable[str] = ("500", "503", "429"),
    latency: float = 0.0,
    seed: int | None = None,
    outage_mode: str = "close",
) -> FaultPlan:
    """Validate and build a plan; raises ``ValueError`` with a readable message on bad input."""
    kinds = tuple(str(kind) for kind in error_kinds)
    unknown = [kind for kind in kinds if kind not in ERROR_KINDS]
    if unknown:
        raise ValueError(f"unknown error kinds {unknown}; known: {list(ERROR_KINDS)}")
    if not 0.0 <= float(error_rate) <= 1.0:
        raise ValueError("error_rate must be within 0..1")
    if error_rate and not kinds:
        raise ValueError("error_rate needs at least one error kind")
    if float(latency) < 0 or (outage_seconds is not None and float(outage_seconds) < 0):
        raise ValueError("latency and outage_seconds must not be negative")
    if outage_mode not in OUTAGE_MODES:
        raise ValueError(f"outage_mode must be one of {list(OUTAGE_MODES)}")
    return FaultPlan(
        outage_until=None if outage_seconds is None else now + float(outage_seconds),
        outage_mode=outage_mode,
        error_rate=float(error_rate),
        error_kinds=kinds,
        latency=float(latency),
        rng=random.Random(seed),
    )


def plan_from_json(body: Mapping[str, Any], now: float) -> FaultPlan:
    """``POST /_sim/fault`` body -> plan; an empty body means no faults."""
    allowed = {"outage_seconds", "error_rate", "error_kinds", "latency", "seed", "outage_mode"}
    extra = set(body) - allowed
    if extra:
        raise ValueError(f"unknown fault fields {sorted(extra)}")
    kinds = body.get("error_kinds", ("500", "503", "429"))
    if isinstance(kinds, str) or not isinstance(kinds, list | tuple):
        raise ValueError("error_kinds must be a list")
    try:
        return build_plan(
            now,
            outage_seconds=None if body.get("outage_seconds") is None else float(body["outage_seconds"]),
            error_rate=float(body.get("error_rate", 0.0)),
            error_kinds=kinds,
            latency=float(body.get("latency", 0.0)),
            seed=None if body.get("seed") is None else int(body["seed"]),
            outage_mode=str(body.get("outage_mode", "close")),
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from exc


def pick_failure(plan: FaultPlan, now: float) -> str | None:
    """``"outage:<mode>"``, an error kind, or None for a healthy request."""
    if plan.outage_until is not None and now < plan.outage_until:
        return f"outage:{plan.outage_mode}"
    if plan.error_rate and plan.rng.random() < plan.error_rate:
        return plan.rng.choice(plan.error_kinds)
    return None
