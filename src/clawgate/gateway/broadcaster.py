"""Fan broadcast events out to authenticated connections (spec §8.1, §8.9).

Who receives an event is read from its declaration (`EventSpec.gate`), never restated by
the code that broadcasts it.
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from typing import Any, Generic, Protocol, TypeVar

from ..protocol.events import EventGate, EventSpec, admits
from ..protocol.frames import PreparedEvent
from .peer import Peer

__all__ = ["Broadcaster", "Subscriber"]


class Subscriber(Peer, Protocol):
    """A connection as the broadcaster sees it."""

    def send_event(self, prepared: PreparedEvent) -> None:
        """Queue a broadcast event with the connection's next `seq`."""


S = TypeVar("S", bound=Subscriber)


class Broadcaster(Generic[S]):
    """The set of connections that receive broadcasts, and the events they may receive."""

    def __init__(self, events: Mapping[str, EventSpec]) -> None:
        self._events = events
        self._connections: dict[str, S] = {}

    def __len__(self) -> int:
        return len(self._connections)

    def __iter__(self) -> Iterator[S]:
        return iter(list(self._connections.values()))

    def add(self, connection: S) -> None:
        """Start delivering broadcasts to `connection`."""
        self._connections[connection.conn_id] = connection

    def remove(self, connection: S) -> None:
        """Stop delivering broadcasts to `connection`."""
        self._connections.pop(connection.conn_id, None)

    def _gate(self, event: str) -> EventGate:
        gate = self._events[event].gate
        if gate is None:
            raise ValueError(f"event {event} is targeted, not broadcast")
        return gate

    def broadcast(
        self, event: str, payload: Any, *, state_version: dict[str, int] | None = None
    ) -> int:
        """Serialise `event` once and queue it to every connection its gate admits.

        Returns:
            How many connections it was queued to.
        """
        return self.deliver(PreparedEvent.build(event, payload, state_version))

    def deliver(self, prepared: PreparedEvent, *, skip: Container[str] = ()) -> int:
        """Queue an already serialised event to every admitted connection not in `skip`.

        Returns:
            How many connections it was queued to.
        """
        gate = self._gate(prepared.event)
        sent = 0
        for connection in list(self._connections.values()):
            if connection.conn_id in skip:
                continue
            if admits(gate, connection.role, connection.scopes):
                connection.send_event(prepared)
                sent += 1
        return sent

    def broadcast_per_protocol(
        self,
        event: str,
        payloads: Mapping[int, Any],
        *,
        only: Container[str] | None = None,
    ) -> int:
        """Like `broadcast`, with a payload per protocol version, optionally to `only` ids.

        Each version's frame is serialised once, and only if some connection needs it.

        Returns:
            How many connections it was queued to.
        """
        gate = self._gate(event)
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
