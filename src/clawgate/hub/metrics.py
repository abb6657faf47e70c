"""The hub's ``/metrics``: what each instance holds and how its repair paths work (spec §7.2).

One registry per hub (several hubs may share a test process). Names start ``clawgate_hub_``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "HubMetrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
_LAG_BUCKETS: Final = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


class HubMetrics:
    """Counters and gauges of one hub instance."""

    def __init__(self, held: Callable[[], int]) -> None:
        """Report ``held()`` as the number of daemon links this instance holds."""
        self.registry = CollectorRegistry(auto_describe=True)
        self.held = Gauge(
            "clawgate_hub_held_daemons",
            "Daemon links this instance holds now.",
            registry=self.registry,
        )
        self.held.set_function(held)
        self.bus_lag = Histogram(
            "clawgate_hub_bus_lag_seconds",
            "From publishing a hint to its delivery on this instance (clocks of both).",
            buckets=_LAG_BUCKETS,
            registry=self.registry,
        )
        self.sweep_repairs = Counter(
            "clawgate_hub_sweep_repairs",
            "Items the sweep delivered because their hint was lost (kind: desired_state, "
            "command, takeover).",
            ["kind"],
            registry=self.registry,
        )
        self.sweeps_failed = Counter(
            "clawgate_hub_sweeps_failed",
            "Sweeps that could not read the database.",
            registry=self.registry,
        )
        self.takeovers = Counter(
            "clawgate_hub_takeovers",
            "Links this instance closed with 4409 because another session took the daemon.",
            registry=self.registry,
        )

    def render(self) -> bytes:
        """Return the Prometheus text exposition."""
        return generate_latest(self.registry)
