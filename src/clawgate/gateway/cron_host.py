"""The cron side of a gateway, built on first use.

A gateway whose state.db holds no cron job (and no run cut off by a crash) does not load
the scheduler, its records or croniter: they are built when a `cron.*` call first needs
them, or at start-up when state.db has cron rows. Until then `cron.list` and `cron.status`
answer from here, and correctly so: there is nothing to list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..automation.delivery import DeliveryRouter
from ..store import StateStore, gateway_state
from .automation import AgentTurns
from .heartbeat import HeartbeatRunner
from .metrics import GatewayMetrics
from .system_events import SystemEvents

if TYPE_CHECKING:
    from ..automation.service import CronService

__all__ = ["CronHost", "Spawn"]

#: Start a long-running loop in the gateway's task group.
Spawn = Callable[[Coroutine[Any, Any, None]], object]


class CronHost:
    """Owns the scheduler once it is built, and builds it when first needed."""

    def __init__(
        self,
        *,
        store: StateStore,
        clock: Callable[[], int],
        announce: Callable[[dict[str, Any]], None],
        default_tz: str,
        enabled: bool,
        turns: AgentTurns,
        system_events: SystemEvents,
        heartbeats: HeartbeatRunner,
        delivery: DeliveryRouter,
        metrics: GatewayMetrics,
    ) -> None:
        self._store = store
        self._clock = clock
        self._announce = announce
        self.default_tz = default_tz
        self.enabled = enabled
        self._turns = turns
        self._system_events = system_events
        self._heartbeats = heartbeats
        self._delivery = delivery
        self._metrics = metrics
        self._spawn: Spawn | None = None
        self._lock = asyncio.Lock()
        #: The scheduler, once built.
        self.service: CronService | None = None

    async def prepare(self) -> None:
        """Build and load the scheduler now if state.db has cron jobs or cut-off runs."""
        if await self._store.read(gateway_state.cron_in_use):
            await self.get()

    def start(self, spawn: Spawn) -> None:
        """Run the scheduler's timer in the gateway's task group (now, or once it is built)."""
        self._spawn = spawn
        if self.service is not None and self.enabled:
            spawn(self.service.run())

    async def get(self) -> CronService:
        """Return the scheduler, building and loading it on first use."""
        async with self._lock:
            if self.service is None:
                from ..automation.service import CronService
                from .cron_runner import CronRunner, cron_metrics

                runner = CronRunner(
                    turns=self._turns,
                    system_events=self._system_events,
                    heartbeats=self._heartbeats,
                    delivery=self._delivery,
                    clock=self._clock,
                )
                service = CronService(
                    store=self._store,
                    clock=self._clock,
                    runner=runner,
                    announce=self._announce,
                    default_tz=self.default_tz,
                    enabled=self.enabled,
                )
                await service.load()
                self.service = service
                self._metrics.add_source(cron_metrics(service))
                if self._spawn is not None and self.enabled:
                    self._spawn(service.run())
            return self.service

    def status(self) -> dict[str, Any]:
        """Return `cron.status`, without building the scheduler when there is none."""
        if self.service is not None:
            return self.service.status()
        return {
            "enabled": self.enabled,
            "jobs": 0,
            "nextWakeAtMs": None,
            "timezone": self.default_tz,
        }

    async def stop(self) -> None:
        """Let runs in flight record how they ended (the agent side aborted them first)."""
        if self.service is not None:
            await self.service.stop()
