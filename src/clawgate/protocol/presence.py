"""The presence list and its version counter (spec §8.3, §8.8)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from .connect import ClientInfo

__all__ = ["QUIET_MODES", "PresenceTable", "connection_entry"]


class PresenceTable:
    """Presence entries keyed by instance, device or connection id.

    Entries tied to a live connection stay until it leaves; entries upserted by
    `system-event` without one expire `expiry_ms` after their last update.
    """

    def __init__(self, self_entry: dict[str, Any], expiry_ms: int) -> None:
        self._self_entry = self_entry
        self._expiry_ms = expiry_ms
        self._entries: dict[str, dict[str, Any]] = {}
        self._expires_at: dict[str, int] = {}
        self.version = 0

    def entries(self) -> list[dict[str, Any]]:
        """Return the whole list, the gateway's own entry first."""
        return [self._self_entry, *self._entries.values()]

    def upsert(self, key: str, entry: dict[str, Any], *, expires_at_ms: int | None = None) -> None:
        """Add or replace an entry; with `expires_at_ms` it lapses unless refreshed."""
        self._entries[key] = entry
        if expires_at_ms is None:
            self._expires_at.pop(key, None)
        else:
            self._expires_at[key] = expires_at_ms
        self.version += 1

    def upsert_detached(self, key: str, entry: dict[str, Any], now_ms: int) -> None:
        """Upsert an entry with no connection behind it, merging into a live one if present."""
        if key in self._entries and key not in self._expires_at:
            self._entries[key] = {**self._entries[key], **entry}
            self.version += 1
            return
        self.upsert(key, entry, expires_at_ms=now_ms + self._expiry_ms)

    def remove(self, key: str) -> bool:
        """Remove an entry; return whether the list changed."""
        if self._entries.pop(key, None) is None:
            return False
        self._expires_at.pop(key, None)
        self.version += 1
        return True

    def expire(self, now_ms: int) -> bool:
        """Drop lapsed entries; return whether the list changed."""
        lapsed = [key for key, deadline in self._expires_at.items() if deadline <= now_ms]
        for key in lapsed:
            del self._entries[key]
            del self._expires_at[key]
        if lapsed:
            self.version += 1
        return bool(lapsed)


# Modes that do not appear in the presence list (spec §8.8).
QUIET_MODES: Final = frozenset({"cli", "probe"})


def connection_entry(
    client: ClientInfo,
    *,
    connected_at_ms: int,
    remote_ip: str,
    role: str,
    scopes: Sequence[str],
    device_id: str | None,
) -> dict[str, Any]:
    """Return the presence entry of a connection that just joined (spec §8.8)."""
    entry: dict[str, Any] = {
        "ts": connected_at_ms,
        "ip": remote_ip,
        "version": client.version,
        "platform": client.platform,
        "mode": client.mode,
        "reason": "connect",
        "roles": [role],
        "scopes": list(scopes),
    }
    optional = {
        "host": client.displayName,
        "deviceFamily": client.deviceFamily,
        "modelIdentifier": client.modelIdentifier,
        "deviceId": device_id,
        "instanceId": client.instanceId,
    }
    entry.update({name: value for name, value in optional.items() if value is not None})
    return entry
