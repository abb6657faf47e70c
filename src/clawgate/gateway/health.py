"""The cached health summary and its periodic refresh (spec §10.1)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["HealthMonitor"]


class HealthMonitor:
    """Build, cache and refresh the HealthSummary; each refresh bumps `version`."""

    def __init__(
        self,
        build: Callable[[], dict[str, Any]],
        clock: Callable[[], int],
        on_refresh: Callable[[dict[str, Any]], None],
    ) -> None:
        self._build = build
        self._clock = clock
        self._on_refresh = on_refresh
        self.version = 0
        self.summary: dict[str, Any] = {}

    def refresh(self) -> dict[str, Any]:
        """Rebuild the summary, bump the version and announce it."""
        started = time.perf_counter()
        summary = self._build()
        summary["ts"] = self._clock()
        summary["durationMs"] = round((time.perf_counter() - started) * 1000)
        self.summary = summary
        self.version += 1
        self._on_refresh(summary)
        return summary

    async def run(self, interval_s: float) -> None:
        """Refresh every `interval_s` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            self.refresh()
