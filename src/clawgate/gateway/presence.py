"""Presence inside the gateway: who is connected, announced to operators (spec §8.3, §8.8).

Invariants:
- Every change bumps `stateVersion.presence` at once; announcing it may wait. Changes are
  coalesced (`CoalescingMachine`): one `presence` event per interval at most, carrying
  the whole list and the version as they are when it is sent, so no event is stale.
- `hello-ok.snapshot` reads the table itself, never a pending announcement, so it is
  exact; a connection whose snapshot already shows the version a pending announcement
  will carry is skipped by that announcement (it would tell it nothing new).
- A presence key held by several connections stays until the last of them leaves; a
  count per key answers that in O(1) rather than a scan of every connection.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from ..protocol.coalescing import CoalescingMachine
from ..protocol.frames import PreparedEvent
from ..protocol.hello import presence_payload
from ..protocol.limits import PRESENCE_FANOUT_BYTES_PER_S, PRESENCE_FLUSH_INTERVAL_MS
from ..protocol.presence import QUIET_MODES, PresenceTable, connection_entry
from .broadcaster import Broadcaster
from .peer import Peer

__all__ = ["PresenceService", "Present", "monotonic_ms"]


def monotonic_ms() -> int:
    """Return a monotonic clock in milliseconds (for spacing announcements)."""
    return time.monotonic_ns() // 1_000_000


class Present(Peer, Protocol):
    """A connection as presence sees it: who, since when, under which presence key."""

    @property
    def connected_at_ms(self) -> int: ...

    presence_key: str | None


class PresenceService:
    """Keep the presence list and announce its changes to operators, coalesced."""

    def __init__(
        self,
        table: PresenceTable,
        broadcaster: Broadcaster[Any],
        state_version: Callable[[], dict[str, int]],
        *,
        clock: Callable[[], int] = monotonic_ms,
        min_interval_ms: int = PRESENCE_FLUSH_INTERVAL_MS,
        fanout_bytes_per_s: int = PRESENCE_FANOUT_BYTES_PER_S,
    ) -> None:
        """Announce `table`'s changes through `broadcaster`, stamped with `state_version()`.

        `clock` is monotonic milliseconds; it spaces the announcements and nothing else.
        """
        self.table = table
        self._broadcaster = broadcaster
        self._state_version = state_version
        self._clock = clock
        self._machine = CoalescingMachine(min_interval_ms, fanout_bytes_per_s)
        self._holders: Counter[str] = Counter()
        # conn id -> the presence version of its snapshot, for connections welcomed while
        # an announcement is pending; cleared by each announcement.
        self._welcomed: dict[str, int] = {}
        self._wakeup = asyncio.Event()

    @property
    def version(self) -> int:
        """The presence counter of `stateVersion`."""
        return self.table.version

    @property
    def pending(self) -> bool:
        """Whether a change waits to be announced."""
        return self._machine.pending

    def entries(self) -> list[dict[str, Any]]:
        """Return the whole list, the gateway's own entry first."""
        return self.table.entries()

    def welcomed(self, conn_id: str) -> None:
        """Note that a connection's snapshot was just taken (call in the same step)."""
        if self._machine.pending:
            self._welcomed[conn_id] = self.table.version

    def joined(self, connection: Present) -> None:
        """Add a new connection's entry (quiet client modes have none) and announce it."""
        client = connection.client
        if client is None or client.mode in QUIET_MODES:
            return
        key = client.instanceId or connection.device_id or connection.conn_id
        connection.presence_key = key
        self._holders[key] += 1
        entry = connection_entry(
            client,
            connected_at_ms=connection.connected_at_ms,
            remote_ip=connection.remote_ip,
            role=connection.role.value,
            scopes=connection.scopes,
            device_id=connection.device_id,
        )
        self.table.upsert(key, entry)
        self._changed()

    def left(self, connection: Present) -> None:
        """Remove a closed connection's entry unless another connection holds the same key."""
        key = connection.presence_key
        if key is None:
            return
        self._holders[key] -= 1
        if self._holders[key] > 0:
            return
        del self._holders[key]
        if self.table.remove(key):
            self._changed()

    def upsert_detached(self, key: str, entry: dict[str, Any], now_ms: int) -> None:
        """Add or refresh an entry no connection holds (`system-event`) and announce it."""
        self.table.upsert_detached(key, entry, now_ms)
        self._changed()

    def expire(self, now_ms: int) -> None:
        """Drop lapsed detached entries and announce the change, if any."""
        if self.table.expire(now_ms):
            self._changed()

    def _changed(self) -> None:
        if self._machine.changed(self._clock()):
            self.announce()
        else:
            self._wakeup.set()

    def announce(self) -> None:
        """Broadcast the whole presence list to operators now."""
        version = self.table.version
        skip = {conn_id for conn_id, seen in self._welcomed.items() if seen >= version}
        self._welcomed.clear()
        prepared = PreparedEvent.build(
            "presence", presence_payload(self.table.entries()), self._state_version()
        )
        sent = self._broadcaster.deliver(prepared, skip=skip)
        self._machine.announced(self._clock(), len(prepared.head) * sent)

    async def run(self) -> None:
        """Announce pending changes when they fall due, until cancelled."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            due_at = self._machine.due_at_ms
            while due_at is not None:
                await asyncio.sleep(max(0, due_at - self._clock()) / 1000)
                if self._machine.due(self._clock()):
                    self.announce()
                due_at = self._machine.due_at_ms
