"""The heartbeat runner: the periodic agent turn, switchable at run time (spec §10.1)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

from ..store import StateStore, gateway_state

__all__ = ["HeartbeatRunner", "format_every"]

HeartbeatTurn = Callable[[], Awaitable[dict[str, Any]]]
#: The state.db meta record that keeps the switch across restarts.
ENABLED_KEY: Final = "heartbeats_enabled"


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
        store: StateStore | None = None,
        enabled: bool = True,
    ) -> None:
        """Beat with `turn`; the switch is kept in `store` when there is one."""
        self._turn = turn
        self._on_heartbeat = on_heartbeat
        self._store = store
        self.every_s = every_s
        self.enabled = enabled
        self.last: dict[str, Any] | None = None

    async def load(self) -> None:
        """Restore the switch from the store."""
        if self._store is None:
            return
        saved = await self._store.read(lambda conn: gateway_state.get_value(conn, ENABLED_KEY))
        if saved is not None:
            self.enabled = saved == "true"

    async def set_enabled(self, enabled: bool) -> None:
        """Switch heartbeats on or off; committed before it takes effect, so it survives."""
        if self._store is not None:
            value = "true" if enabled else "false"
            await self._store.write(lambda conn: gateway_state.set_value(conn, ENABLED_KEY, value))
        self.enabled = enabled

    def schedule(self) -> dict[str, Any]:
        """Return the switch and the cadence as `status` and `health` show them."""
        return {
            "enabled": self.enabled,
            "every": format_every(self.every_s),
            "everyMs": self.every_s * 1000,
        }

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
