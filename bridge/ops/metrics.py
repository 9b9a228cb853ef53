"""Prometheus metrics of one daemon, on a registry of its own (several daemons can live in one test process)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bridge.delivery.hooks import DeliveryObserver

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Sampled(Collector):
    """Gauges read at scrape time from the parts that own the numbers."""

    def __init__(self, samples: dict[str, tuple[str, Callable[[], float]]]) -> None:
        self._samples = samples

    def collect(self):  # type: ignore[no-untyped-def]
        for name, (doc, read) in self._samples.items():
            try:
                value = float(read())
            except Exception:  # a part that is not up yet has no number to give
                continue
            yield GaugeMetricFamily(name, doc, value=value)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.calls = Counter(
            "b24bridge_calls", "Calls ended, by outcome (Bitrix24 STATUS_CODE)", ["status"], registry=r
        )
        self.active_calls = Gauge("b24bridge_active_calls", "Calls in progress", registry=r)
        self.reconnects = Counter("b24bridge_pbx_reconnects", "PBX reconnects", ["link"], registry=r)
        self.event_lag = Histogram(
            "b24bridge_event_lag_seconds",
            "From a PBX event entering the queue to the core having handled it",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.clicktocall = Counter("b24bridge_clicktocall", "Click-to-call events, by result", ["result"], registry=r)
        self._samples: dict[str, tuple[str, Callable[[], float]]] = {}
        r.register(_Sampled(self._samples))

    def sample(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """Expose ``read()`` as the gauge ``name`` at every scrape."""
        self._samples[name] = (doc, read)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class DeliveryMetrics(DeliveryObserver):
    """What delivery reports, as counters on the daemon's registry."""

    def __init__(self, metrics: Metrics, on_retry: Callable[[], None] | None = None) -> None:
        self.on_retry = on_retry
        """Told about every transient failure (the portal watch uses it to notice an outage)."""
        r = metrics.registry
        self.requests = Counter("b24bridge_crm_requests", "batch requests sent to Bitrix24", ["ok"], registry=r)
        self.commands = Counter("b24bridge_crm_commands", "operations confirmed by Bitrix24", ["method"], registry=r)
        self.problems = Counter(
            "b24bridge_crm_problems", "operations retried (by error code) or parked (by method)", ["kind", "code"],
            registry=r,
        )  # fmt: skip
        self.offline_calls = Counter("b24bridge_crm_offline_calls", "calls mirrored offline", registry=r)
        self._requests: dict[bool, Any] = {}
        self._commands: dict[str, Any] = {}
        """The labelled counters counted so far (``labels()`` costs a lock and a few objects each time; every
        request and every operation counts one)."""

    def batch_sent(self, commands: int, seconds: float, ok: bool) -> None:
        counter = self._requests.get(ok)
        if counter is None:
            counter = self._requests[ok] = self.requests.labels(ok=str(ok).lower())
        counter.inc()

    def delivered(self, kind: str, method: str) -> None:
        counter = self._commands.get(method)
        if counter is None:
            counter = self._commands[method] = self.commands.labels(method=method)
        counter.inc()

    def retried(self, kind: str, method: str, code: str) -> None:
        self.problems.labels(kind="retry", code=code or "network").inc()
        if self.on_retry is not None:
            self.on_retry()

    def failed(self, kind: str, method: str, reason: str) -> None:
        self.problems.labels(kind="failed", code=method).inc()

    def offline(self, crm_leg: str) -> None:
        self.offline_calls.inc()
