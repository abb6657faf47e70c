"""The gateway client's public face: ``GatewayClient`` and what it is built from.

The work is done by private modules, one job each: ``_handshake`` opens and authenticates a
connection, ``_connection`` owns one socket and its reader task, ``_requests`` correlates
responses and times calls out, ``_stream`` delivers events and seq gaps, ``_lifecycle``
keeps the client's state across connections and ``_reconnect`` re-opens a lost one.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final

import aiohttp

from ..protocol.device_auth import DeviceIdentity
from ._backoff import Backoff
from ._device import DeviceAuth, check_device_options
from ._frames import Event, Response, build_connect_params
from ._handshake import DEFAULT_CLIENT_VERSION, DEFAULT_MAX_MSG_SIZE, Dialer
from ._identity import DeviceTokenStore
from ._lifecycle import ClientState, Lifecycle
from ._reconnect import ReconnectCallback
from ._requests import request, request_streaming
from ._stream import DEFAULT_STREAM_SIZE, EventHub, EventStream, GapCallback

__all__ = ["DEFAULT_URL", "GatewayClient"]

DEFAULT_URL: Final = "ws://127.0.0.1:18789/"


class GatewayClient:
    """Async client for the clawgate / OpenClaw gateway WebSocket protocol (v3 and v4).

    Use it as an async context manager, or call ``connect()`` and ``close()``. One reader
    task per connection owns the socket's receive side; with ``reconnect=True`` one
    supervisor task re-establishes lost connections. ``close()`` cancels and awaits both.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        password: str | None = None,
        client_id: str = "gateway-client",
        client_mode: str = "backend",
        client_version: str = DEFAULT_CLIENT_VERSION,
        platform: str = sys.platform,
        role: str = "operator",
        scopes: Sequence[str] = ("operator.admin",),
        caps: Sequence[str] = (),
        instance_id: str | None = None,
        display_name: str | None = None,
        min_protocol: int = 3,
        max_protocol: int = 4,
        reconnect: bool = False,
        backoff_initial: float = 0.25,
        backoff_max: float = 30.0,
        on_gap: GapCallback | None = None,
        on_reconnect: ReconnectCallback | None = None,
        connect_timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
        max_msg_size: int = DEFAULT_MAX_MSG_SIZE,
        extra_connect_params: Mapping[str, Any] | None = None,
        backoff: Backoff | None = None,
        identity: DeviceIdentity | None = None,
        device_tokens: DeviceTokenStore | None = None,
        tls_fingerprint: str | None = None,
        device_family: str | None = None,
    ) -> None:
        """Configure a client; nothing is opened until ``connect()``.

        Args:
            url: WebSocket URL of the gateway.
            token: Shared gateway token (token auth mode).
            password: Shared gateway password (password auth mode).
            client_id: ``client.id`` sent in ``connect`` (a closed enum on the server).
            client_mode: ``client.mode`` sent in ``connect``.
            client_version: ``client.version`` sent in ``connect``.
            platform: ``client.platform`` sent in ``connect``.
            role: ``operator`` or ``node``.
            scopes: Requested scopes.
            caps: Declared capabilities, e.g. ``tool-events``.
            instance_id: ``client.instanceId``, the presence key.
            display_name: ``client.displayName``.
            min_protocol: Lowest acceptable protocol version.
            max_protocol: Highest acceptable protocol version.
            reconnect: Re-establish the connection after an unexpected close.
            backoff_initial: Ceiling of the first reconnect delay, in seconds.
            backoff_max: Largest reconnect delay ceiling, in seconds.
            on_gap: Called with ``(expected_seq, got_seq)`` on a seq gap; without it the
                gap is raised as ``SequenceGapError`` from every ``events()`` iterator.
            on_reconnect: Called (and awaited if it returns an awaitable) with the new
                ``hello-ok`` payload after each successful reconnect.
            connect_timeout: Deadline for opening the socket and completing the handshake.
            session: aiohttp session to use; the client creates and owns one if None.
            max_msg_size: Largest inbound message accepted from the gateway.
            extra_connect_params: Members merged into ``connect`` params at the top level.
            backoff: Reconnect schedule; built from ``backoff_initial``/``backoff_max`` if None.
            identity: Device key pair; when set, ``connect`` carries a ``device`` block
                signed over the challenge nonce (see ``load_or_create_identity``).
            device_tokens: Where the device tokens the gateway issues are kept and read back
                on the next connect; needs ``identity`` and must belong to it.
            tls_fingerprint: SHA-256 of the gateway certificate's DER, hex with or without
                colons. The certificate is then trusted by this pin alone, checked before
                anything is sent; needs a ``wss://`` URL.
            device_family: ``client.deviceFamily``, e.g. ``desktop``.

        Raises:
            ValueError: ``tls_fingerprint`` is malformed or the URL is not ``wss://``;
                ``device_tokens`` is given without ``identity`` or for another device;
                ``extra_connect_params`` holds a ``device`` while ``identity`` is set.
        """
        check_device_options(identity, device_tokens, extra_connect_params)
        connect_params = functools.partial(
            build_connect_params,
            min_protocol=min_protocol,
            max_protocol=max_protocol,
            client_id=client_id,
            client_version=client_version,
            platform=platform,
            client_mode=client_mode,
            role=role,
            scopes=tuple(scopes),
            caps=tuple(caps),
            display_name=display_name,
            instance_id=instance_id,
            device_family=device_family,
            token=token,
            password=password,
            extra=dict(extra_connect_params or {}),
        )
        self._dialer = Dialer(
            url,
            connect_params,
            device=DeviceAuth(identity, device_tokens, role, url),
            connect_timeout=connect_timeout,
            session=session,
            max_msg_size=max_msg_size,
            tls_fingerprint=tls_fingerprint,
        )
        self._url = url
        self._hub = EventHub(on_gap)
        self._life = Lifecycle(
            self._dialer,
            self._hub,
            backoff if backoff is not None else Backoff(backoff_initial, backoff_max),
            reconnect=reconnect,
            on_reconnect=on_reconnect,
            url=url,
        )

    def __repr__(self) -> str:
        return f"<GatewayClient {self._url} {self._life.state.value}>"

    # -- properties -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Return the gateway URL."""
        return self._url

    @property
    def state(self) -> ClientState:
        """Return the client's lifecycle state."""
        return self._life.state

    @property
    def hello(self) -> dict[str, Any] | None:
        """Return the ``hello-ok`` payload of the current (or last) connection."""
        return self._life.hello

    @property
    def protocol(self) -> int | None:
        """Return the negotiated protocol version, or None before the first handshake."""
        hello = self._life.hello
        if hello is None:
            return None
        protocol = hello.get("protocol")
        return protocol if isinstance(protocol, int) else None

    @property
    def connected(self) -> bool:
        """Return True while a connection is open and authenticated."""
        return self._life.state is ClientState.OPEN

    @property
    def close_code(self) -> int | None:
        """Return the close code of the most recently closed connection."""
        return self._life.close_code

    @property
    def close_reason(self) -> str | None:
        """Return the close reason of the most recently closed connection."""
        return self._life.close_reason

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> GatewayClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> dict[str, Any]:
        """Open the socket, wait for ``connect.challenge`` and complete the handshake.

        Returns:
            The ``hello-ok`` payload.

        Raises:
            GatewayHandshakeError: The gateway refused the ``connect`` request.
            GatewayConnectionError: The socket could not be opened or closed early.
            GatewayTimeoutError: The handshake did not finish within ``connect_timeout``.
            RuntimeError: The client is already connected or connecting.
        """
        return await self._life.connect()

    async def close(self) -> None:
        """Close the connection, stop reconnecting and end every event iterator.

        Pending calls fail with ``GatewayConnectionError``. Safe to call more than once.
        """
        await self._life.close()

    # -- requests ---------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = 30.0,
    ) -> Response:
        """Send a request and return its response without raising on ``ok:false``.

        Args:
            method: Method name, e.g. ``health``.
            params: Method params; omitted from the frame when None.
            timeout: Seconds to wait for a connection and the response; None waits forever.

        Returns:
            The first ``Response`` for the request.

        Raises:
            GatewayConnectionError: Not connected, or the connection closed before the response.
            GatewayTimeoutError: No response within ``timeout``.
        """
        return await request(self._life.wait_open, method, params, timeout)

    async def call(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = 30.0,
    ) -> Any:
        """Send a request and return the payload of its ``ok`` response.

        Args:
            method: Method name, e.g. ``health``.
            params: Method params; omitted from the frame when None.
            timeout: Seconds to wait for a connection and the response; None waits forever.

        Returns:
            The response payload.

        Raises:
            GatewayCallError: The gateway answered ``ok:false``.
            GatewayConnectionError: Not connected, or the connection closed before the response.
            GatewayTimeoutError: No response within ``timeout``.
        """
        response = await self.request(method, params, timeout=timeout)
        return response.result()

    async def call_streaming(
        self,
        method: str,
        params: Any = None,
        *,
        timeout: float | None = None,
    ) -> tuple[Any, asyncio.Future[Response]]:
        """Send a request answered twice (``agent``): accepted now, final later.

        If the first response is already final (its payload has a ``status`` other than
        ``accepted``, as for a duplicate of a finished run), the future resolves with it.

        Args:
            method: Method name, e.g. ``agent``.
            params: Method params.
            timeout: Seconds to wait for the first response; the future has no deadline.

        Returns:
            The first response's payload and a future resolving to the final ``Response``
            (which may be ``ok:false``); it fails with ``GatewayConnectionError`` if the
            connection closes first. Cancel it to stop waiting.

        Raises:
            GatewayCallError: The first response is ``ok:false``.
            GatewayConnectionError: Not connected, or the connection closed first.
            GatewayTimeoutError: No first response within ``timeout``.
        """
        return await request_streaming(self._life.wait_open, method, params, timeout)

    async def send_raw(self, data: str | bytes) -> None:
        """Send one frame as is: ``str`` as a text frame, ``bytes`` as a binary frame.

        Args:
            data: The frame content.

        Raises:
            GatewayConnectionError: Not connected, or the send failed.
        """
        await self._life.require_open().send_raw(data)

    # -- events -----------------------------------------------------------------------------

    def events(self, *, maxsize: int = DEFAULT_STREAM_SIZE) -> EventStream:
        """Return an async iterator over every event received from now on.

        ``connect.challenge`` is never included. Each iterator has its own queue of at most
        ``maxsize`` events (the oldest is dropped when full). Iteration ends when the client
        closes or loses its connection without reconnecting; it continues across reconnects.

        Args:
            maxsize: Queue bound of this iterator.

        Returns:
            An ``EventStream``; call ``aclose()`` (or use ``async with``) when done.
        """
        return self._hub.subscribe(maxsize)

    async def next_event(
        self,
        name: str | None = None,
        *,
        timeout: float = 10.0,
        predicate: Callable[[Event], bool] | None = None,
    ) -> Event:
        """Wait for the next event received from now on that matches.

        Args:
            name: Event name to match, or None for any event.
            timeout: Seconds to wait.
            predicate: Extra condition the event must satisfy.

        Returns:
            The matching event.

        Raises:
            GatewayTimeoutError: No matching event within ``timeout``.
            GatewayConnectionError: The connection ended first.
            SequenceGapError: A seq gap was seen while waiting and no ``on_gap`` is set.
        """
        event = await self._hub.next_event(name, timeout, predicate)
        if event is None:
            raise self._life.not_connected_error()
        return event
