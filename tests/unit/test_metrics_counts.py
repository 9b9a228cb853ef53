"""The daemon's metrics count and bucket exactly as prometheus_client's own classes do."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bridge.ops.metrics import DeliveryMetrics, Metrics

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def _exposition(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_event_lag_lands_in_the_buckets_the_library_would_choose() -> None:
    ours = Metrics()
    theirs = Histogram("b24bridge_event_lag_seconds", "x", buckets=BUCKETS, registry=CollectorRegistry())
    amounts = [0.0, 0.0005, 0.00051, 0.001, 0.003, 0.01, 0.2, 0.25, 1.0, 1.5, 7.0, -0.1, math.nan, math.inf]
    for amount in amounts:
        ours.event_lag.observe(amount)
        theirs.observe(amount)

    def samples(histogram: Histogram) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(s.labels.items())): s.value
            for s in histogram.collect()[0].samples
            if not s.name.endswith("_created")
        }

    ours_samples, their_samples = samples(ours.event_lag), samples(theirs)
    assert ours_samples.keys() == their_samples.keys()
    for key, value in their_samples.items():
        assert ours_samples[key] == value or (math.isnan(value) and math.isnan(ours_samples[key])), key
    assert 'b24bridge_event_lag_seconds_bucket{le="0.0005"} 3.0' in _exposition(ours)


def test_counters_and_the_gauge_count_as_the_library_does_and_refuse_what_it_refuses() -> None:
    metrics = Metrics()
    delivery = DeliveryMetrics(metrics)
    for ok in (True, True, False):
        delivery.batch_sent(3, 0.01, ok)
    for method in ("telephony.externalcall.register", "telephony.externalcall.finish", "telephony.externalcall.finish"):
        delivery.delivered("finish", method)
    delivery.offline("c.1")
    metrics.calls.labels(status="200").inc()
    metrics.calls.labels(status="200").inc(2.5)
    metrics.active_calls.set(3)
    metrics.active_calls.set(2)
    text = _exposition(metrics)
    assert 'b24bridge_crm_requests_total{ok="true"} 2.0' in text
    assert 'b24bridge_crm_requests_total{ok="false"} 1.0' in text
    assert 'b24bridge_crm_commands_total{method="telephony.externalcall.finish"} 2.0' in text
    assert "b24bridge_crm_offline_calls_total 1.0" in text
    assert 'b24bridge_calls_total{status="200"} 3.5' in text
    assert "b24bridge_active_calls 2.0" in text
    with pytest.raises(ValueError, match="missing label values"):
        metrics.calls.inc()
    with pytest.raises(ValueError, match="non-negative"):
        metrics.calls.labels(status="200").inc(-1)
    assert isinstance(metrics.calls, Counter)
