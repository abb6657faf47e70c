"""The pairing registry inside the gateway: persistence, events and socket closes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from ..protocol.handshake import CLOSE_AUTH_CHANGED, PairingChanges
from ..protocol.pairing import DeviceRecord, PairingRegistry, PendingRequest
from ..protocol.scopes import Role
from ..store import StateStore, pairing_repo
from .broadcaster import Broadcaster

__all__ = ["DeviceSocket", "PairingService"]

logger = logging.getLogger(__name__)


class DeviceSocket(Protocol):
    """A connection as pairing sees it: whose device it is, and how to close it."""

    @property
    def device_id(self) -> str | None: ...
    @property
    def role(self) -> Role: ...
    def close(self, code: int, reason: str) -> None:
        """Close the socket with `code`."""

    def close_after_answer(self, code: int, reason: str) -> None:
        """Close once the answer to the request being handled is queued."""


class PairingService:
    """Own the in-memory registry; write every change to the store before answering."""

    def __init__(
        self,
        store: StateStore | None,
        broadcaster: Broadcaster[Any],
        sockets: Callable[[], Iterable[DeviceSocket]],
        clock: Callable[[], int],
    ) -> None:
        """Persist to `store`, announce through `broadcaster`, close among `sockets()`."""
        self._store = store
        self._broadcaster = broadcaster
        self._sockets = sockets
        self._clock = clock
        self.registry = PairingRegistry()

    async def load(self) -> None:
        """Read paired devices and pending requests from the store."""
        if self._store is None:
            return
        devices, pending = await self._store.read(pairing_repo.load_pairing)
        self.registry = PairingRegistry(devices, pending)

    async def apply_handshake(self, changes: PairingChanges) -> None:
        """Persist what a handshake changed, then announce it."""
        await self.save(
            device=changes.device, request=changes.pending, dropped=changes.dropped_requests
        )
        if changes.pending is not None and changes.pending_is_new:
            logger.info(
                "pairing requested by device %s (%s)",
                changes.pending.device_id[:16],
                changes.pending.reason,
            )
            self.announce_requested(changes.pending)
        if changes.auto_approved is not None and changes.device is not None:
            logger.info("device %s auto-approved on loopback", changes.device.device_id[:16])
            self.announce_resolved(changes.auto_approved, changes.device.device_id, "approved")

    async def save(
        self,
        *,
        device: DeviceRecord | None = None,
        request: PendingRequest | None = None,
        dropped: list[str] | tuple[str, ...] = (),
        removed_device: str | None = None,
    ) -> None:
        """Write the given changes in one transaction."""
        store = self._store
        if store is None:
            return

        await store.write(
            lambda conn: pairing_repo.save_changes(
                conn,
                device=device,
                request=request,
                dropped=dropped,
                removed_device=removed_device,
            )
        )

    def announce_requested(self, request: PendingRequest) -> None:
        """Tell operators holding the pairing scope that a device waits."""
        self._broadcaster.broadcast("device.pair.requested", request.payload())

    def announce_resolved(self, request_id: str, device_id: str, decision: str) -> None:
        """Tell operators holding the pairing scope how a request ended."""
        payload = {
            "requestId": request_id,
            "deviceId": device_id,
            "decision": decision,
            "ts": self._clock(),
        }
        self._broadcaster.broadcast("device.pair.resolved", payload)

    def close_device_sockets(
        self,
        device_id: str,
        reason: str,
        role: str | None = None,
        caller: object = None,
    ) -> None:
        """Close every socket of a device (optionally one role) with 4001; the caller last."""
        for connection in self._sockets():
            if connection.device_id != device_id:
                continue
            if role is not None and connection.role.value != role:
                continue
            if connection is caller:
                connection.close_after_answer(CLOSE_AUTH_CHANGED, reason)
            else:
                connection.close(CLOSE_AUTH_CHANGED, reason)
