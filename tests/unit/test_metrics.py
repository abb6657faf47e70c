"""The gateway's metrics: plain counters, rendered in the Prometheus text format."""

from __future__ import annotations

import pytest

from clawgate.gateway.metrics import GatewayMetrics


def _samples(metrics: GatewayMetrics) -> dict[str, float]:
    lines = metrics.render().decode().splitlines()
    pairs = (line.rsplit(" ", 1) for line in lines if line and not line.startswith("#"))
    return {name: float(value) for name, value in pairs}


def test_counters_render_with_their_labels() -> None:
    metrics = GatewayMetrics()
    metrics.connections = 3
    metrics.handshakes["accepted"] += 2
    metrics.errors["INVALID_REQUEST"] += 1
    metrics.slow_consumers += 1
    metrics.frames_in += 5
    samples = _samples(metrics)
    assert samples["clawgate_connections"] == 3
    assert samples['clawgate_handshakes_total{outcome="accepted"}'] == 2
    assert samples['clawgate_errors_total{code="INVALID_REQUEST"}'] == 1
    assert samples["clawgate_slow_consumers_total"] == 1
    assert samples["clawgate_frames_in_total"] == 5


def test_a_label_never_seen_has_no_sample() -> None:
    text = GatewayMetrics().render().decode()
    assert "clawgate_handshakes_total{" not in text
    assert "clawgate_method_latency_seconds_bucket{" not in text


def test_latency_falls_into_cumulative_buckets_bounded_above() -> None:
    metrics = GatewayMetrics()
    for seconds in (0.0005, 0.0006, 0.2, 100.0):
        metrics.observe_latency("health", seconds)
    samples = _samples(metrics)
    bucket = 'clawgate_method_latency_seconds_bucket{{le="{}",method="health"}}'.format
    assert samples[bucket("0.0005")] == 1  # `le` includes the bound itself
    assert samples[bucket("0.001")] == 2
    assert samples[bucket("0.5")] == 3
    assert samples[bucket("30.0")] == 3
    assert samples[bucket("+Inf")] == 4
    assert samples['clawgate_method_latency_seconds_count{method="health"}'] == 4
    assert samples['clawgate_method_latency_seconds_sum{method="health"}'] == pytest.approx(
        100.2011
    )
