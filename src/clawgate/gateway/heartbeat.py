"""The heartbeat runner: the periodic agent turn, switchable at run time (spec §10.1)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["HeartbeatRunner", "format_every"]

HeartbeatTurn = Callable[[], Awaitable[dict[str, Any]]]


def format_every(seconds: int) -> str:
    """Render an interval the way OpenClaw shows it: `30m`, `1h`, `45s`."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


class HeartbeatRunner:
    """Run a heartbeat turn every `every_s` seconds while enabled and remember the last."""

    def __init__(
        self,
        turn: HeartbeatTurn,
        every_s: int,
        on_heartbeat: Callable[[dict[str, Any]], None],
        *,
        enabled: bool = True,
    ) -> None:
        self._turn = turn
        self._on_heartbeat = on_heartbeat
        self.every_s = every_s
        self.enabled = enabled
        self.last: dict[str, Any] | None = None

    async def beat(self) -> dict[str, Any]:
        """Run one heartbeat turn now, record it and announce it."""
        event = await self._turn()
        self.last = event
        self._on_heartbeat(event)
        return event

    async def run(self) -> None:
        """Beat every `every_s` seconds while enabled, until cancelled."""
        while True:
            await asyncio.sleep(self.every_s)
            if self.enabled:
                await self.beat()
