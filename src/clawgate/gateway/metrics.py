"""Prometheus metrics of one gateway (served at `/metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["GatewayMetrics"]


class GatewayMetrics:
    """Connections, frames, errors by code and method latency, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        self.frames_in = Counter(
            "clawgate_frames_in", "Frames received after hello-ok", registry=self.registry
        )
        self.frames_out = Counter(
            "clawgate_frames_out", "Frames queued to clients", registry=self.registry
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

    def render(self) -> bytes:
        """Return the Prometheus text exposition."""
        return generate_latest(self.registry)
