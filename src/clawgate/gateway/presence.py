"""Presence inside the gateway: who is connected, announced to operators (spec §8.3, §8.8)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..protocol.hello import presence_payload
from ..protocol.presence import QUIET_MODES, PresenceTable, connection_entry
from .broadcaster import Broadcaster
from .peer import Peer

__all__ = ["PresenceService", "Present"]


class Present(Peer, Protocol):
    """A connection as presence sees it: who, since when, under which presence key."""

    @property
    def connected_at_ms(self) -> int: ...

    presence_key: str | None


class PresenceService:
    """Keep the presence list and announce each change to operators."""

    def __init__(
        self,
        table: PresenceTable,
        broadcaster: Broadcaster[Any],
        state_version: Callable[[], dict[str, int]],
    ) -> None:
        """Announce `table`'s changes through `broadcaster`, stamped with `state_version()`."""
        self.table = table
        self._broadcaster = broadcaster
        self._state_version = state_version

    @property
    def version(self) -> int:
        """The presence counter of `stateVersion`."""
        return self.table.version

    def entries(self) -> list[dict[str, Any]]:
        """Return the whole list, the gateway's own entry first."""
        return self.table.entries()

    def joined(self, connection: Present) -> None:
        """Add a new connection's entry (quiet client modes have none) and announce it."""
        client = connection.client
        if client is None or client.mode in QUIET_MODES:
            return
        key = client.instanceId or connection.device_id or connection.conn_id
        connection.presence_key = key
        entry = connection_entry(
            client,
            connected_at_ms=connection.connected_at_ms,
            remote_ip=connection.remote_ip,
            role=connection.role.value,
            scopes=connection.scopes,
            device_id=connection.device_id,
        )
        self.table.upsert(key, entry)
        self.announce()

    def left(self, connection: Present, still_present: Callable[[str], bool]) -> None:
        """Remove a closed connection's entry unless another connection holds the same key."""
        key = connection.presence_key
        if key is not None and not still_present(key) and self.table.remove(key):
            self.announce()

    def upsert_detached(self, key: str, entry: dict[str, Any], now_ms: int) -> None:
        """Add or refresh an entry no connection holds (`system-event`) and announce it."""
        self.table.upsert_detached(key, entry, now_ms)
        self.announce()

    def expire(self, now_ms: int) -> None:
        """Drop lapsed detached entries and announce the change, if any."""
        if self.table.expire(now_ms):
            self.announce()

    def announce(self) -> None:
        """Broadcast the whole presence list to operators."""
        self._broadcaster.broadcast(
            "presence",
            presence_payload(self.table.entries()),
            state_version=self._state_version(),
        )
