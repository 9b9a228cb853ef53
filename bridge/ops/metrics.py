"""Prometheus metrics of one daemon, on a registry of its own (several daemons can live in one test process)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bridge.delivery.hooks import DeliveryObserver

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Counter(Counter):
    """A counter whose plain ``inc`` (no exemplar, a child or a counter without labels) is two Python calls, not
    four: prometheus_client checks that the metric is observable through two more on every count (every request,
    operation and ended call counts one). Anything else goes through the library's own."""

    def inc(self, amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        if exemplar or not amount >= 0 or (self._labelnames and not self._labelvalues):
            return super().inc(amount, exemplar)
        self._value.inc(amount)
        return None


class _Gauge(Gauge):
    """A gauge whose plain ``set`` is two Python calls, not four (see :class:`_Counter`)."""

    def set(self, value: float) -> None:
        if self._is_most_recent or (self._labelnames and not self._labelvalues):
            return super().set(value)
        self._value.set(float(value))
        return None


class _Histogram(Histogram):
    """A histogram whose plain ``observe`` is three Python calls, not five (every PBX event observes one), its bucket
    found by bisection (the library's loop takes the first bound at or above the amount: the same bucket)."""

    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        if exemplar or amount != amount or (self._labelnames and not self._labelvalues):  # NaN: no bucket
            return super().observe(amount, exemplar)
        self._sum.inc(amount)
        self._buckets[bisect_left(self._upper_bounds, amount)].inc(1)
        return None


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
        self.calls = _Counter(
            "b24bridge_calls", "Calls ended, by outcome (Bitrix24 STATUS_CODE)", ["status"], registry=r
        )
        self.active_calls = _Gauge("b24bridge_active_calls", "Calls in progress", registry=r)
        self.reconnects = _Counter("b24bridge_pbx_reconnects", "PBX reconnects", ["link"], registry=r)
        self.event_lag = _Histogram(
            "b24bridge_event_lag_seconds",
            "From a PBX event entering the queue to the core having handled it",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.clicktocall = _Counter("b24bridge_clicktocall", "Click-to-call events, by result", ["result"], registry=r)
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
        self.requests = _Counter("b24bridge_crm_requests", "batch requests sent to Bitrix24", ["ok"], registry=r)
        self.commands = _Counter("b24bridge_crm_commands", "operations confirmed by Bitrix24", ["method"], registry=r)
        self.problems = _Counter(
            "b24bridge_crm_problems", "operations retried (by error code) or parked (by method)", ["kind", "code"],
            registry=r,
        )  # fmt: skip
        self.offline_calls = _Counter("b24bridge_crm_offline_calls", "calls mirrored offline", registry=r)
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
