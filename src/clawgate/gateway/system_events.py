"""System events waiting for the next agent turn (spec §10.1 `system-event`)."""

from __future__ import annotations

from collections import deque
from typing import Any

from ..protocol.limits import MAX_QUEUED_SYSTEM_EVENTS
from ..store import StateStore, gateway_state

__all__ = ["SystemEvents"]


class SystemEvents:
    """A bounded FIFO of `{text, ts}` entries for the main session, kept in the store."""

    def __init__(self, store: StateStore | None, maxlen: int = MAX_QUEUED_SYSTEM_EVENTS) -> None:
        self._store = store
        self._maxlen = maxlen
        self._events: deque[dict[str, Any]] = deque(maxlen=maxlen)

    async def load(self) -> None:
        """Restore the events queued before a restart."""
        if self._store is None:
            return
        for event in await self._store.read(gateway_state.load_system_events):
            self._events.append({"text": event["text"], "ts": event["ts"]})

    async def push(self, text: str, ts: int) -> None:
        """Queue one system event; committed before it is queued, so it survives a crash."""
        if self._store is not None:
            maxlen = self._maxlen
            await self._store.write(
                lambda conn: gateway_state.append_system_event(conn, text, ts, maxlen)
            )
        self._events.append({"text": text, "ts": ts})

    def peek(self) -> list[dict[str, Any]]:
        """Return the queued events, oldest first, without consuming them."""
        return list(self._events)

    async def consume(self, count: int) -> None:
        """Remove the `count` oldest events (an agent turn read them); committed first."""
        if self._store is not None:
            await self._store.write(lambda conn: gateway_state.consume_system_events(conn, count))
        for _ in range(min(count, len(self._events))):
            self._events.popleft()
