"""Hub time: local time plus the offset the control link measured (spec §1.6, §3.4)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from ..store import StateStore, gateway_state

__all__ = ["OFFSET_KEY", "HubClock"]

#: Where the offset `serverTime - local time` is kept (a state.db meta record).
OFFSET_KEY: Final = "hub_clock_offset_ms"


class HubClock:
    """Tell hub time; remember the last measured offset across restarts."""

    def __init__(self, store: StateStore, local_clock: Callable[[], int]) -> None:
        self._store = store
        self._local = local_clock
        self.offset_ms = 0
        self._writes: set[asyncio.Task[None]] = set()

    def now_ms(self) -> int:
        """Return hub time in epoch milliseconds."""
        return self._local() + self.offset_ms

    async def load(self) -> None:
        """Restore the last measured offset; command deadlines (§4.5) depend on it."""
        saved = await self._store.read(lambda conn: gateway_state.get_value(conn, OFFSET_KEY))
        if saved is not None:
            self.offset_ms = int(saved)

    def set_offset(self, offset_ms: int) -> None:
        """Use a newly measured offset now and write it to state.db in the background."""
        self.offset_ms = offset_ms
        value = str(offset_ms)
        task = asyncio.create_task(
            self._store.write(lambda conn: gateway_state.set_value(conn, OFFSET_KEY, value))
        )
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def flush(self) -> None:
        """Wait for offset writes still in progress."""
        await asyncio.gather(*self._writes, return_exceptions=True)
