"""Prometheus metrics of one gateway (served at `/metrics`).

The counters are plain integers, read by a collector at scrape time: a prometheus
`Counter.inc()` takes a lock, which is measurable on the request hot path, and
prometheus_client itself (with the http.server and wsgiref modules it pulls in) is
imported only on the first scrape, so a gateway nobody scrapes does not hold it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Final

__all__ = ["LATENCY_BUCKETS_S", "GatewayMetrics", "MetricSource", "Sample"]

#: One value a service reports: (kind "counter" or "gauge", name, help, labels, value).
Sample = tuple[str, str, str, dict[str, str], float]
#: A service's values, read at scrape time.
MetricSource = Callable[[], Iterator[Sample]]

#: Upper bounds of the method latency histogram, in seconds (`+Inf` is implied).
LATENCY_BUCKETS_S: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30)


class _Latency:
    """One method's latency histogram: a count per bucket, the sum and the total."""

    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS_S) + 1)  # the last one is +Inf
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.count += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, float]]:
        bounds = [*(repr(float(bound)) for bound in LATENCY_BUCKETS_S), "+Inf"]
        running = 0
        out = []
        for bound, count in zip(bounds, self.buckets, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class GatewayMetrics:
    """Connections, handshakes, frames, errors by code, slow consumers, method latency."""

    def __init__(self) -> None:
        self.connections = 0
        self.frames_in = 0
        self.frames_out = 0
        self.slow_consumers = 0
        self.handshakes: Counter[str] = Counter()  # by outcome
        self.errors: Counter[str] = Counter()  # by code
        self._latency: dict[str, _Latency] = {}
        self._sources: list[MetricSource] = []
        self._registry: Any = None
        # Per channel account: (channel, account, state, inbound, outbound, errors, reconnects).
        self.channel_counters: Callable[[], list[tuple[str, str, str, int, int, int, int]]] = list

    def add_source(self, source: MetricSource) -> None:
        """Report a service's own counters and gauges too (read at scrape time)."""
        self._sources.append(source)

    def observe_latency(self, method: str, seconds: float) -> None:
        """Record one call's latency."""
        histogram = self._latency.get(method)
        if histogram is None:
            histogram = self._latency[method] = _Latency()
        histogram.observe(seconds)

    def render(self) -> bytes:
        """Return the Prometheus text exposition."""
        from prometheus_client import CollectorRegistry, generate_latest

        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=True)
            self._registry.register(_Collector(self))
        return bytes(generate_latest(self._registry))

    def families(self) -> Iterator[Any]:
        """Yield the metric families of a scrape (prometheus_client is loaded by then)."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        yield GaugeMetricFamily(
            "clawgate_connections", "Authenticated WebSocket connections", value=self.connections
        )
        handshakes = CounterMetricFamily(
            "clawgate_handshakes", "Handshakes by outcome", labels=["outcome"]
        )
        for outcome, count in sorted(self.handshakes.items()):
            handshakes.add_metric([outcome], count)
        yield handshakes
        errors = CounterMetricFamily("clawgate_errors", "Error responses by code", labels=["code"])
        for code, count in sorted(self.errors.items()):
            errors.add_metric([code], count)
        yield errors
        yield CounterMetricFamily(
            "clawgate_slow_consumers",
            "Connections closed for exceeding maxBufferedBytes",
            value=self.slow_consumers,
        )
        yield CounterMetricFamily(
            "clawgate_frames_in", "Frames received after hello-ok", value=self.frames_in
        )
        yield CounterMetricFamily(
            "clawgate_frames_out", "Frames queued to clients", value=self.frames_out
        )
        latency = HistogramMetricFamily(
            "clawgate_method_latency_seconds",
            "Time from request to response by method",
            labels=["method"],
        )
        for method, histogram in sorted(self._latency.items()):
            latency.add_metric([method], histogram.cumulative(), sum_value=histogram.total)
        yield latency
        families: dict[str, Any] = {}
        for source in self._sources:
            for kind, name, help_text, labels, value in source():
                family = families.get(name)
                if family is None:
                    make = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                    family = families[name] = make(name, help_text, labels=list(labels))
                family.add_metric(list(labels.values()), value)
        yield from families.values()
        yield from self._channel_families()

    def _channel_families(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        rows = self.channel_counters()
        labels = ["channel", "account"]
        up = GaugeMetricFamily(
            "clawgate_channel_connected", "1 when a channel account is connected", labels=labels
        )
        families = {
            "inbound": CounterMetricFamily(
                "clawgate_channel_inbound", "Messages received per account", labels=labels
            ),
            "outbound": CounterMetricFamily(
                "clawgate_channel_outbound", "Messages delivered per account", labels=labels
            ),
            "errors": CounterMetricFamily(
                "clawgate_channel_errors", "Failures per account", labels=labels
            ),
            "reconnects": CounterMetricFamily(
                "clawgate_channel_reconnects", "Restarts of an account", labels=labels
            ),
        }
        for channel, account, state, inbound, outbound, errors, reconnects in rows:
            up.add_metric([channel, account], 1 if state == "connected" else 0)
            for name, value in zip(families, (inbound, outbound, errors, reconnects), strict=True):
                families[name].add_metric([channel, account], value)
        yield up
        yield from families.values()


class _Collector:
    """Expose a `GatewayMetrics` to a prometheus registry at scrape time."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        """Yield the current metric families."""
        return self._metrics.families()
