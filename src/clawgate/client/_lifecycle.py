"""The client's life: its state, the current connection, connect, close and losing it.

States (``ClientState``):
- ``IDLE`` or ``CLOSED`` → ``CONNECTING`` (``connect()``) → ``OPEN`` on ``hello-ok``, or
  ``CLOSED`` if the handshake fails.
- ``OPEN`` → ``RECONNECTING`` when the connection is lost and ``reconnect=True``, then
  ``OPEN`` again, or ``CLOSED`` when the supervisor gives up; without reconnect → ``CLOSED``.
- any → ``CLOSING`` (``close()``) → ``CLOSED``.

Invariants:
- A call made while ``CONNECTING`` or ``RECONNECTING`` waits for the outcome instead of
  failing: ``_ready`` is clear exactly in those two states.
- ``close()`` may run during any await of ``connect()`` or of a reconnect; a connection that
  completes its handshake after that is closed at once, never installed.
- Only the installed connection's end changes the state; a replaced one's is ignored.
- ``close_code``/``close_reason`` describe the most recently ended connection, or the refusal
  that ended the client.
- Event streams end when the client stops for good (``close()``, a close without reconnect,
  giving up), never across a reconnect.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any, Final

from ._backoff import Backoff
from ._connection import Connection
from ._errors import GatewayConnectionError, GatewayHandshakeError
from ._handshake import Dialer
from ._reconnect import ReconnectCallback, Supervisor
from ._stream import EventHub

__all__ = ["ClientState", "Lifecycle"]


class ClientState(enum.Enum):
    """Where a ``GatewayClient`` is in its life."""

    IDLE = "idle"  # never connected
    CONNECTING = "connecting"  # connect() is running its first handshake
    OPEN = "open"  # hello-ok received; calls go straight out
    RECONNECTING = "reconnecting"  # connection lost; backoff and handshake in progress
    CLOSING = "closing"  # close() is running
    CLOSED = "closed"  # closed by close(), by the server without reconnect, or given up


#: States in which a call waits for the outcome instead of failing at once.
_WAITING_STATES: Final = frozenset({ClientState.CONNECTING, ClientState.RECONNECTING})


class Lifecycle:
    """One client's connection over time: connect, lose, reconnect, close."""

    def __init__(
        self,
        dialer: Dialer,
        events: EventHub,
        backoff: Backoff,
        *,
        reconnect: bool,
        on_reconnect: ReconnectCallback | None,
        url: str,
    ) -> None:
        """Start ``IDLE``; ``dialer`` opens each connection, ``events`` gets their events."""
        self._dialer = dialer
        self._events = events
        self._backoff = backoff
        self._reconnect = reconnect
        self._on_reconnect = on_reconnect
        self._url = url
        self._state = ClientState.IDLE
        self._ready = asyncio.Event()  # set whenever the state is not a waiting state
        self._ready.set()
        self._conn: Connection | None = None
        self._give_up_error: BaseException | None = None
        self._supervisor: asyncio.Task[None] | None = None
        #: The ``hello-ok`` payload of the current (or last) connection.
        self.hello: dict[str, Any] | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None

    @property
    def state(self) -> ClientState:
        """Return the client's state."""
        return self._state

    @property
    def current(self) -> Connection | None:
        """Return the installed connection, open or not."""
        return self._conn

    @property
    def reconnecting(self) -> bool:
        """Return True while a lost connection is being re-established."""
        return self._state is ClientState.RECONNECTING

    async def connect(self) -> dict[str, Any]:
        """Run the first handshake, install the connection and start the supervisor.

        Raises:
            RuntimeError: The client is already connected or connecting.
        """
        if self._state not in (ClientState.IDLE, ClientState.CLOSED):
            raise RuntimeError(f"cannot connect: client is {self._state.value}")
        self._give_up_error = None
        self._set_state(ClientState.CONNECTING)
        try:
            conn = await self._dialer.open()
        except BaseException as exc:
            if isinstance(exc, GatewayHandshakeError | GatewayConnectionError):
                self.close_code, self.close_reason = exc.close_code, exc.close_reason
            self._set_state(ClientState.CLOSED)
            await self._dialer.release_session()
            raise
        if self.state is not ClientState.CONNECTING:  # close() ran during the handshake
            await conn.aclose()
            raise GatewayConnectionError("client closed during connect")
        self.install(conn)
        if self._reconnect:
            supervisor = Supervisor(self, self._backoff, self._on_reconnect, self._url)
            self._supervisor = asyncio.create_task(
                supervisor.run(), name=f"clawgate-client-supervisor {self._url}"
            )
        return conn.hello

    async def close(self) -> None:
        """Stop the supervisor, close the connection and end every event stream."""
        if self._state is ClientState.CLOSING:
            return
        self._set_state(ClientState.CLOSING)
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not asyncio.current_task():
            supervisor.cancel()
            await asyncio.wait([supervisor])
        conn = self._conn
        if conn is not None and not conn.closed.is_set():
            await conn.aclose()
            self.close_code = conn.ws.close_code or 1000
            self.close_reason = None
        self._events.end_all()
        self._set_state(ClientState.CLOSED)
        await self._dialer.release_session()

    def require_open(self) -> Connection:
        """Return the open connection.

        Raises:
            GatewayConnectionError: The client is not open.
        """
        conn = self._conn
        if self._state is not ClientState.OPEN or conn is None:
            raise self.not_connected_error()
        return conn

    async def wait_open(self) -> Connection:
        """Return the open connection, waiting while one is being (re)established."""
        while True:
            conn = self._conn
            if self._state is ClientState.OPEN and conn is not None:
                return conn
            if self._state not in _WAITING_STATES:
                raise self.not_connected_error()
            await self._ready.wait()

    def not_connected_error(self) -> GatewayConnectionError:
        """Return the error for a call that cannot be sent."""
        if self._give_up_error is not None:
            message = f"not connected: reconnect gave up ({self._give_up_error})"
        else:
            message = f"not connected (client is {self._state.value})"
        return GatewayConnectionError(
            message, close_code=self.close_code, close_reason=self.close_reason
        )

    async def open(self) -> Connection:
        """Open and authenticate a new connection, not yet installed."""
        return await self._dialer.open()

    def install(self, conn: Connection) -> None:
        """Make ``conn`` the current connection and start its reader task."""
        self._conn = conn
        self.hello = conn.hello
        self._backoff.reset()
        conn.start(self._events, self._connection_lost)
        self._set_state(ClientState.OPEN)

    def give_up(self, exc: BaseException) -> None:
        """Stop reconnecting for good: close the client and end the event iterators."""
        self._give_up_error = exc
        if isinstance(exc, GatewayHandshakeError | GatewayConnectionError):
            self.close_code = exc.close_code
            self.close_reason = exc.close_reason
        self._set_state(ClientState.CLOSED)
        self._events.end_all()

    def _set_state(self, state: ClientState) -> None:
        """Change state; wake callers waiting for a connection unless still waiting."""
        self._state = state
        if state in _WAITING_STATES:
            self._ready.clear()
        else:
            self._ready.set()

    def _connection_lost(self, conn: Connection) -> None:
        """React to the end of ``conn``: mark closed, or hand over to the supervisor."""
        if conn is not self._conn:
            return
        self.close_code, self.close_reason = conn.close_code, conn.close_reason
        if conn.closing or self._state is ClientState.CLOSING:
            return
        if self._reconnect:
            conn.log.warning(
                "connection lost (code %s, reason %r); reconnecting",
                conn.close_code,
                conn.close_reason,
            )
            self._set_state(ClientState.RECONNECTING)
        else:
            conn.log.info(
                "connection closed (code %s, reason %r)", conn.close_code, conn.close_reason
            )
            self._set_state(ClientState.CLOSED)
            self._events.end_all()
