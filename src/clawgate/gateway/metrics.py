"""Prometheus metrics of one gateway (served at `/metrics`).

Per-frame counters are plain integers read by a collector at scrape time: a prometheus
`Counter.inc()` takes a lock, which is measurable on the request hot path.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

__all__ = ["GatewayMetrics"]


class _FrameCollector(Collector):
    """Expose the integer frame counters as Prometheus counters."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily]:
        """Yield the frame counters at scrape time."""
        yield CounterMetricFamily(
            "clawgate_frames_in", "Frames received after hello-ok", value=self._metrics.frames_in
        )
        yield CounterMetricFamily(
            "clawgate_frames_out", "Frames queued to clients", value=self._metrics.frames_out
        )


class GatewayMetrics:
    """Connections, frames, errors by code and method latency, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.frames_in = 0
        self.frames_out = 0
        self.registry.register(_FrameCollector(self))
        self.connections = Gauge(
            "clawgate_connections",
            "Authenticated WebSocket connections",
            registry=self.registry,
        )
        self.handshakes = Counter(
            "clawgate_handshakes",
            "Handshakes by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.errors = Counter(
            "clawgate_errors", "Error responses by code", ["code"], registry=self.registry
        )
        self.slow_consumers = Counter(
            "clawgate_slow_consumers",
            "Connections closed for exceeding maxBufferedBytes",
            registry=self.registry,
        )
        self.method_latency = Histogram(
            "clawgate_method_latency_seconds",
            "Time from request to response by method",
            ["method"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30),
            registry=self.registry,
        )
        self._latency_by_method: dict[str, Histogram] = {}

    def observe_latency(self, method: str, seconds: float) -> None:
        """Record one call's latency; label children are cached per method."""
        child = self._latency_by_method.get(method)
        if child is None:
            child = self._latency_by_method[method] = self.method_latency.labels(method)
        child.observe(seconds)

    def render(self) -> bytes:
        """Return the Prometheus text exposition."""
        return generate_latest(self.registry)
