"""The gateway's connections: admission, the handshake phase, joining and leaving.

Invariant: a connection is registered for broadcasts in the same synchronous step in
which its snapshot is taken (`welcome`); an await between them would let an event fall
between the snapshot and the first event the client sees. Presence hears of the snapshot
in that step too, so a pending `presence` announcement the snapshot already shows skips it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..protocol.frames import PreparedEvent
from ..protocol.handshake import CLOSE_RESTART
from ..protocol.hello import HelloAuth, shutdown_payload
from ..protocol.limits import Limits
from .broadcaster import Broadcaster
from .greeter import Greeter
from .metrics import GatewayMetrics
from .presence import PresenceService

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["ConnectionTable"]

logger = logging.getLogger(__name__)


class ConnectionTable:
    """Admit sockets, hold them through the handshake, and register the ones that join."""

    def __init__(
        self,
        *,
        limits: Limits,
        broadcaster: Broadcaster[Connection],
        presence: PresenceService,
        greeter: Greeter,
        metrics: GatewayMetrics,
        on_left: Callable[[str], None] = lambda conn_id: None,
        on_joined: Callable[[Connection], None] = lambda connection: None,
    ) -> None:
        """Admit within `limits`; `on_joined`/`on_left(conn_id)` hear of sockets that join/close."""
        self._limits = limits
        self._broadcaster = broadcaster
        self._presence = presence
        self._greeter = greeter
        self._metrics = metrics
        self._on_left = on_left
        self._on_joined = on_joined
        self._handshaking: set[Connection] = set()
        self._unauthenticated_by_ip: Counter[str] = Counter()
        self.ready = False
        self.stopping = False

    def __iter__(self) -> Iterator[Connection]:
        return iter(self._broadcaster)

    def __len__(self) -> int:
        return len(self._broadcaster)

    def admission_refusal(self, remote_ip: str) -> str | None:
        """Return why a new upgrade must be refused with 503, or None."""
        if self.stopping:
            return "gateway stopping"
        if len(self._handshaking) + len(self._broadcaster) >= self._limits.max_connections:
            return "too many connections"
        if self._unauthenticated_by_ip[remote_ip] >= self._limits.max_unauthenticated_per_ip:
            return "too many unauthenticated connections from this address"
        return None

    async def serve(self, connection: Connection) -> None:
        """Serve one upgraded socket for its whole life."""
        self._handshaking.add(connection)
        self._unauthenticated_by_ip[connection.remote_ip] += 1
        try:
            await connection.serve()
        finally:
            self._leave_handshake(connection)

    def _leave_handshake(self, connection: Connection) -> None:
        if connection in self._handshaking:
            self._handshaking.discard(connection)
            self._unauthenticated_by_ip[connection.remote_ip] -= 1
            if self._unauthenticated_by_ip[connection.remote_ip] <= 0:
                del self._unauthenticated_by_ip[connection.remote_ip]

    def welcome(self, connection: Connection, auth: HelloAuth) -> dict[str, Any]:
        """Take the snapshot and register for broadcasts in one step; return `hello-ok`."""
        self._leave_handshake(connection)
        hello = self._greeter.hello(connection, auth)
        self._broadcaster.add(connection)
        self._presence.welcomed(connection.conn_id)
        self._metrics.connections = len(self._broadcaster)
        return hello

    def joined(self, connection: Connection) -> None:
        """Announce a connection that received its `hello-ok`."""
        self._on_joined(connection)
        self._presence.joined(connection)

    def left(self, connection: Connection) -> None:
        """Forget a closed connection and announce its presence entry's removal."""
        self._broadcaster.remove(connection)
        self._metrics.connections = len(self._broadcaster)
        self._on_left(connection.conn_id)
        self._presence.left(connection)

    async def close_all(self, reason: str, restart_expected_ms: int | None) -> None:
        """Announce `shutdown`, drain for at most the policy's bound, then close with 1012."""
        payloads = {
            protocol: PreparedEvent.build(
                "shutdown", shutdown_payload(protocol, reason, restart_expected_ms)
            )
            for protocol in (3, 4)
        }
        connections = list(self._broadcaster)
        for connection in connections:
            connection.send_event(payloads[connection.protocol])
        logger.info("shutting down: %s (%d connections)", reason, len(connections))
        try:
            async with asyncio.timeout(self._limits.shutdown_drain_ms / 1000):
                await asyncio.gather(*(c.wait_drained() for c in connections))
        except TimeoutError:
            logger.warning("shutdown drain bound reached; closing with frames still queued")
        await asyncio.gather(
            *(c.close_gracefully(CLOSE_RESTART, "service restart") for c in connections),
            *(c.abort_handshake(CLOSE_RESTART, "service restart") for c in self._handshaking),
            return_exceptions=True,
        )
