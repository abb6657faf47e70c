"""Fan broadcast events out to authenticated connections (spec §8.1, §8.9)."""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..protocol.events import EventGate, admits
from ..protocol.frames import PreparedEvent

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Broadcaster"]


class Broadcaster:
    """The set of connections that receive broadcasts."""

    def __init__(self) -> None:
        self._connections: dict[str, Connection] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._connections.values()))

    def add(self, connection: Connection) -> None:
        """Start delivering broadcasts to `connection`."""
        self._connections[connection.conn_id] = connection

    def remove(self, connection: Connection) -> None:
        """Stop delivering broadcasts to `connection`."""
        self._connections.pop(connection.conn_id, None)

    def broadcast(
        self,
        event: str,
        payload: Any,
        gate: EventGate,
        *,
        state_version: dict[str, int] | None = None,
    ) -> int:
        """Serialise `event` once and queue it to every connection its gate admits.

        Returns:
            How many connections it was queued to.
        """
        prepared = PreparedEvent.build(event, payload, state_version)
        sent = 0
        for connection in list(self._connections.values()):
            if admits(gate, connection.role, connection.scopes):
                connection.send_event(prepared)
                sent += 1
        return sent

    def broadcast_per_protocol(
        self,
        event: str,
        payloads: Mapping[int, Any],
        gate: EventGate,
        *,
        only: Container[str] | None = None,
    ) -> int:
        """Like `broadcast`, with a payload per protocol version, optionally to `only` ids.

        Each version's frame is serialised once, and only if some connection needs it.

        Returns:
            How many connections it was queued to.
        """
        prepared: dict[int, PreparedEvent] = {}
        sent = 0
        for connection in list(self._connections.values()):
            if only is not None and connection.conn_id not in only:
                continue
            if not admits(gate, connection.role, connection.scopes):
                continue
            frame = prepared.get(connection.protocol)
            if frame is None:
                frame = PreparedEvent.build(event, payloads[connection.protocol])
                prepared[connection.protocol] = frame
            connection.send_event(frame)
            sent += 1
        return sent
