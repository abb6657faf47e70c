"""The asyncio/aiohttp shell of the gateway client: sockets, tasks and waiting."""

from __future__ import annotations

import asyncio
import enum
import importlib.metadata
import inspect
import logging
import sys
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias

import aiohttp

import clawgate

from ..protocol.device_auth import DeviceIdentity
from ._backoff import Backoff, is_fatal_handshake_error, retry_floor
from ._errors import (
    GatewayConnectionError,
    GatewayError,
    GatewayHandshakeError,
    GatewayTimeoutError,
    IdentityError,
)
from ._frames import (
    AUTH_DEVICE_TOKEN_MISMATCH,
    CHALLENGE_EVENT,
    Event,
    FrameError,
    Response,
    SeqTracker,
    build_connect_params,
    encode_request,
    issued_device_token,
    parse_challenge,
    parse_frame,
    sign_device,
)
from ._identity import DeviceTokenStore, StoredToken, parse_tls_fingerprint
from ._stream import DEFAULT_STREAM_SIZE, EventHub, EventStream

__all__ = ["DEFAULT_URL", "GatewayClient"]

_LOGGER = logging.getLogger(__name__)

DEFAULT_URL: Final = "ws://127.0.0.1:18789/"
DEFAULT_MAX_MSG_SIZE: Final = 26_214_400 + 1024 * 1024
#: How long to wait for the close frame that follows a refused ``connect``.
_HANDSHAKE_CLOSE_WAIT: Final = 1.0
#: Upper bound on a client-initiated close, so close() cannot hang on a dead peer.
_CLOSE_TIMEOUT: Final = 2.0
#: Close code the client sends when the server went silent (protocol §3.6).
_TICK_TIMEOUT_CODE: Final = 4000

#: The client always reads text frames as bytes (``decode_text=False``) for orjson.
_WebSocket: TypeAlias = aiohttp.ClientWebSocketResponse[Literal[False]]
GapCallback = Callable[[int, int], None]
ReconnectCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


def _wall_clock_ms() -> int:
    """Return the local wall clock in ms since the Unix epoch."""
    return time.time_ns() // 1_000_000


def _default_client_version() -> str:
    """Return clawgate's version for ``client.version``."""
    version = getattr(clawgate, "__version__", None)
    if isinstance(version, str) and version:
        return version
    try:
        return importlib.metadata.version("clawgate")
    except importlib.metadata.PackageNotFoundError:
        return "0.1.0"


DEFAULT_CLIENT_VERSION: Final = _default_client_version()


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


class _ConnLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefix every line with the connection's label."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = self.extra or {}
        return f"[{extra.get('conn', '-')}] {msg}", kwargs


@dataclass(slots=True)
class _Pending:
    """Futures awaiting the response(s) to one request id."""

    first: asyncio.Future[Response]
    final: asyncio.Future[Response] | None = None  # set for two-response (streaming) calls


def _consume_exception(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as retrieved."""
    # A final-response future the caller never awaits must not log "exception never retrieved".
    if not future.cancelled():
        future.exception()


class _Connection:
    """One authenticated WebSocket: its pending requests, seq tracker and reader task."""

    def __init__(self, ws: _WebSocket, hello: dict[str, Any], label: str) -> None:
        self.ws = ws
        self.hello = hello
        self.label = label
        self.log = _ConnLogger(_LOGGER, {"conn": label})
        self.pending: dict[str, _Pending] = {}
        self.seq = SeqTracker()
        self.reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.closing = False  # set when the client itself closes this connection
        self.silent = False  # set by the tick watchdog
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.last_rx = asyncio.get_running_loop().time()
        self._watchdog: asyncio.TimerHandle | None = None

    async def send(self, data: bytes) -> None:
        """Send one text frame."""
        try:
            await self.ws.send_frame(data, aiohttp.WSMsgType.TEXT)
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise GatewayConnectionError(
                f"send failed: {exc}", close_code=self.ws.close_code
            ) from exc

    def resolve(self, response: Response) -> None:
        """Hand ``response`` to the request awaiting it; ignore a stray one."""
        pending = self.pending.get(response.id)
        if pending is None:
            self.log.debug("ignoring response to unknown id %s", response.id)
            return
        if not pending.first.done():
            pending.first.set_result(response)
            if pending.final is None:
                del self.pending[response.id]
            return
        if pending.final is not None and not pending.final.done():
            pending.final.set_result(response)
        del self.pending[response.id]

    def mark_closed(self, code: int | None, reason: str | None) -> None:
        """Record the close and fail every pending request at once."""
        if self.closed.is_set():
            return
        self.close_code = code
        self.close_reason = reason or None
        self.stop_watchdog()
        if self.closing:
            message = "connection closed by the client"
        else:
            message = f"connection closed by the gateway (code {code}"
            message += f", reason {reason!r})" if reason else ")"
        for pending in self.pending.values():
            for future in (pending.first, pending.final):
                if future is not None and not future.done():
                    future.set_exception(
                        GatewayConnectionError(message, close_code=code, close_reason=reason)
                    )
        self.pending.clear()
        self.closed.set()

    def start_watchdog(self, interval: float) -> None:
        """Close the connection if no frame arrives for two tick intervals (protocol §8.4)."""
        loop = asyncio.get_running_loop()
        due = loop.time() + interval

        def check() -> None:
            nonlocal due
            if self.closed.is_set():
                return
            now = loop.time()
            idle = now - self.last_rx
            # If this check runs late, our own loop was blocked and frames may be waiting
            # unread in the socket buffer: give the reader a chance before judging the peer.
            stalled = now - due > interval / 2
            if idle > 2 * interval and not stalled:
                self.log.warning("no frame for %.1fs; closing with tick timeout", idle)
                self.silent = True
                if self.reader is not None:
                    self.reader.cancel()
                return
            due = now + interval
            self._watchdog = loop.call_later(interval, check)

        self._watchdog = loop.call_later(interval, check)

    def stop_watchdog(self) -> None:
        """Cancel the tick watchdog."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def aclose(self, code: int = 1000, reason: bytes = b"") -> None:
        """Close the socket and wait for the reader task to finish."""
        self.closing = True
        self.stop_watchdog()
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await self.ws.close(code=code, message=reason)
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            pass
        reader = self.reader
        if reader is not None and reader is not asyncio.current_task():
            if not reader.done():
                reader.cancel()
            await asyncio.wait([reader])
        self.mark_closed(code, None)


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
        if device_tokens is not None:
            if identity is None:
                raise ValueError("device_tokens needs an identity: tokens are bound to a device")
            if device_tokens.device_id != identity.device_id:
                raise ValueError("device_tokens belongs to another device identity")
        if identity is not None and extra_connect_params and "device" in extra_connect_params:
            raise ValueError("pass either identity or extra_connect_params['device'], not both")
        ssl: bool | aiohttp.Fingerprint = True  # aiohttp's default: verify against the CAs
        if tls_fingerprint is not None:
            digest = parse_tls_fingerprint(tls_fingerprint)
            if urllib.parse.urlsplit(url).scheme.lower() not in ("wss", "https"):
                raise ValueError("tls_fingerprint needs a wss:// URL")
            ssl = aiohttp.Fingerprint(digest)
        self._url = url
        self._token = token
        self._password = password
        self._client_id = client_id
        self._client_mode = client_mode
        self._client_version = client_version
        self._platform = platform
        self._role = role
        self._scopes = tuple(scopes)
        self._caps = tuple(caps)
        self._instance_id = instance_id
        self._display_name = display_name
        self._min_protocol = min_protocol
        self._max_protocol = max_protocol
        self._reconnect = reconnect
        self._backoff = backoff if backoff is not None else Backoff(backoff_initial, backoff_max)
        self._on_gap = on_gap
        self._on_reconnect = on_reconnect
        self._connect_timeout = connect_timeout
        self._session = session
        self._owns_session = session is None
        self._max_msg_size = max_msg_size
        self._extra_connect_params = dict(extra_connect_params or {})
        self._identity = identity
        self._device_tokens = device_tokens
        self._ssl = ssl
        self._device_family = device_family

        self._state = ClientState.IDLE
        self._ready = asyncio.Event()  # set whenever the state is not a waiting state
        self._ready.set()
        self._conn: _Connection | None = None
        self._hello: dict[str, Any] | None = None
        self._close_code: int | None = None
        self._close_reason: str | None = None
        self._give_up_error: BaseException | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._hub = EventHub()
        self._log = _ConnLogger(_LOGGER, {"conn": url})

    def __repr__(self) -> str:
        return f"<GatewayClient {self._url} {self._state.value}>"

    # -- properties -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Return the gateway URL."""
        return self._url

    @property
    def state(self) -> ClientState:
        """Return the client's lifecycle state."""
        return self._state

    @property
    def hello(self) -> dict[str, Any] | None:
        """Return the ``hello-ok`` payload of the current (or last) connection."""
        return self._hello

    @property
    def protocol(self) -> int | None:
        """Return the negotiated protocol version, or None before the first handshake."""
        if self._hello is None:
            return None
        protocol = self._hello.get("protocol")
        return protocol if isinstance(protocol, int) else None

    @property
    def connected(self) -> bool:
        """Return True while a connection is open and authenticated."""
        return self._state is ClientState.OPEN

    @property
    def close_code(self) -> int | None:
        """Return the close code of the most recently closed connection."""
        return self._close_code

    @property
    def close_reason(self) -> str | None:
        """Return the close reason of the most recently closed connection."""
        return self._close_reason

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
        if self._state not in (ClientState.IDLE, ClientState.CLOSED):
            raise RuntimeError(f"cannot connect: client is {self._state.value}")
        self._give_up_error = None
        self._set_state(ClientState.CONNECTING)
        try:
            conn = await self._open()
        except BaseException as exc:
            if isinstance(exc, GatewayHandshakeError | GatewayConnectionError):
                self._close_code, self._close_reason = exc.close_code, exc.close_reason
            self._set_state(ClientState.CLOSED)
            await self._release_session()
            raise
        if self.state is not ClientState.CONNECTING:  # close() ran during the handshake
            await conn.aclose()
            raise GatewayConnectionError("client closed during connect")
        self._install(conn)
        if self._reconnect:
            self._supervisor = asyncio.create_task(
                self._supervise(), name=f"clawgate-client-supervisor {self._url}"
            )
        return conn.hello

    async def close(self) -> None:
        """Close the connection, stop reconnecting and end every event iterator.

        Pending calls fail with ``GatewayConnectionError``. Safe to call more than once.
        """
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
            self._close_code = conn.ws.close_code or 1000
            self._close_reason = None
        self._hub.end_all()
        self._set_state(ClientState.CLOSED)
        await self._release_session()

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
        request_id = str(uuid.uuid4())
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                conn = await self._wait_open()
                future = asyncio.get_running_loop().create_future()
                conn.pending[request_id] = _Pending(future)
                await conn.send(encode_request(request_id, method, params))
                response: Response = await future
                return response
        except TimeoutError:
            raise GatewayTimeoutError(f"{method}: no response within {timeout}s") from None
        finally:
            if conn is not None:
                conn.pending.pop(request_id, None)

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
        request_id = str(uuid.uuid4())
        loop = asyncio.get_running_loop()
        final: asyncio.Future[Response] = loop.create_future()
        final.add_done_callback(_consume_exception)
        conn: _Connection | None = None
        try:
            async with asyncio.timeout(timeout):
                conn = await self._wait_open()
                first_future: asyncio.Future[Response] = loop.create_future()
                conn.pending[request_id] = _Pending(first_future, final)
                await conn.send(encode_request(request_id, method, params))
                first = await first_future
        except BaseException as exc:
            if conn is not None:
                conn.pending.pop(request_id, None)
            final.cancel()
            if isinstance(exc, TimeoutError) and not isinstance(exc, GatewayError):
                raise GatewayTimeoutError(f"{method}: no response within {timeout}s") from None
            raise
        if not first.ok or _is_final_payload(first.payload):
            conn.pending.pop(request_id, None)
            if not final.done():
                final.set_result(first)
            first.result()  # raises GatewayCallError for ok:false
            return first.payload, final
        pending = conn.pending
        final.add_done_callback(lambda f: pending.pop(request_id, None) if f.cancelled() else None)
        return first.payload, final

    async def send_raw(self, data: str | bytes) -> None:
        """Send one frame as is: ``str`` as a text frame, ``bytes`` as a binary frame.

        Args:
            data: The frame content.

        Raises:
            GatewayConnectionError: Not connected, or the send failed.
        """
        conn = self._conn
        if self._state is not ClientState.OPEN or conn is None:
            raise self._not_connected_error()
        opcode = aiohttp.WSMsgType.TEXT if isinstance(data, str) else aiohttp.WSMsgType.BINARY
        payload = data.encode() if isinstance(data, str) else data
        try:
            await conn.ws.send_frame(payload, opcode)
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise GatewayConnectionError(f"send failed: {exc}") from exc

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
        async with self._hub.subscribe() as stream:
            try:
                async with asyncio.timeout(timeout):
                    async for event in stream:
                        if name is not None and event.event != name:
                            continue
                        if predicate is None or predicate(event):
                            return event
            except TimeoutError:
                what = repr(name) if name is not None else "any"
                raise GatewayTimeoutError(f"no {what} event within {timeout}s") from None
        raise self._not_connected_error()

    # -- internals: connection setup --------------------------------------------------------

    def _set_state(self, state: ClientState) -> None:
        """Change state; wake callers waiting for a connection unless still waiting."""
        self._state = state
        if state in _WAITING_STATES:
            self._ready.clear()
        else:
            self._ready.set()

    def _not_connected_error(self) -> GatewayConnectionError:
        """Return the error for a call that cannot be sent."""
        if self._give_up_error is not None:
            message = f"not connected: reconnect gave up ({self._give_up_error})"
        else:
            message = f"not connected (client is {self._state.value})"
        return GatewayConnectionError(
            message, close_code=self._close_code, close_reason=self._close_reason
        )

    async def _wait_open(self) -> _Connection:
        """Return the open connection, waiting while one is being (re)established."""
        while True:
            conn = self._conn
            if self._state is ClientState.OPEN and conn is not None:
                return conn
            if self._state not in _WAITING_STATES:
                raise self._not_connected_error()
            await self._ready.wait()

    async def _ensure_session(self) -> aiohttp.ClientSession:
        """Return the aiohttp session, creating the owned one if needed."""
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise GatewayConnectionError("the provided aiohttp session is closed")
            self._session = aiohttp.ClientSession()
        return self._session

    async def _release_session(self) -> None:
        """Close the session if the client created it."""
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _connect_params(self, device_token: str | None = None) -> dict[str, Any]:
        """Return this client's ``connect`` params, without the ``device`` block."""
        return build_connect_params(
            min_protocol=self._min_protocol,
            max_protocol=self._max_protocol,
            client_id=self._client_id,
            client_version=self._client_version,
            platform=self._platform,
            client_mode=self._client_mode,
            role=self._role,
            scopes=self._scopes,
            caps=self._caps,
            display_name=self._display_name,
            instance_id=self._instance_id,
            device_family=self._device_family,
            token=self._token,
            password=self._password,
            device_token=device_token,
            extra=self._extra_connect_params,
        )

    async def _open(self) -> _Connection:
        """Open a socket and run the handshake; return the authenticated connection."""
        session = await self._ensure_session()
        stored = await self._stored_device_token()
        ws: _WebSocket | None = None
        try:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    ws = await session.ws_connect(
                        self._url,
                        autoclose=True,
                        autoping=True,
                        heartbeat=None,
                        compress=0,
                        max_msg_size=self._max_msg_size,
                        decode_text=False,
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=_CLOSE_TIMEOUT),
                        ssl=self._ssl,
                    )
                    response, sent_device_token = await self._handshake(ws, stored)
            except GatewayError:
                raise
            except TimeoutError:
                raise GatewayTimeoutError(
                    f"handshake with {self._url} did not finish within {self._connect_timeout}s"
                ) from None
            except aiohttp.ServerFingerprintMismatch as exc:
                # aiohttp checks the pin right after the TLS handshake, before the upgrade
                # request: no header, token or password has been sent.
                raise GatewayConnectionError(
                    f"TLS certificate fingerprint of {self._url} did not match the pinned "
                    f"tls_fingerprint (the server presented sha256 {exc.got.hex()})"
                ) from exc
            except aiohttp.WSServerHandshakeError as exc:
                raise GatewayConnectionError(
                    f"websocket upgrade to {self._url} refused: HTTP {exc.status}"
                ) from exc
            except (aiohttp.ClientError, OSError) as exc:
                raise GatewayConnectionError(f"cannot connect to {self._url}: {exc}") from exc
            if not response.ok:
                assert response.error is not None  # parse_frame guarantees it
                close_code, close_reason = await _await_close(ws)
                error = response.error.to_handshake_exception(close_code, close_reason)
                if sent_device_token and error.detail_code == AUTH_DEVICE_TOKEN_MISMATCH:
                    await self._forget_device_token()
                raise error
            hello = response.payload if isinstance(response.payload, dict) else {}
            await self._store_device_token(hello, stored)
        except BaseException:
            if ws is not None and not ws.closed:
                try:
                    async with asyncio.timeout(_CLOSE_TIMEOUT):
                        await ws.close()
                except (TimeoutError, aiohttp.ClientError, ConnectionError):
                    pass
            raise
        server = hello.get("server")
        conn_id = server.get("connId") if isinstance(server, dict) else None
        label = str(conn_id)[:8] if conn_id else self._url
        conn = _Connection(ws, hello, label)
        conn.log.info("connected to %s (protocol %s)", self._url, hello.get("protocol"))
        return conn

    async def _handshake(self, ws: _WebSocket, stored: StoredToken | None) -> tuple[Response, bool]:
        """Wait for the challenge, send ``connect`` and return its response.

        Returns:
            The response, and whether ``auth.deviceToken`` carried the stored token.
        """
        challenge = await self._receive_until(
            ws, lambda f: isinstance(f, Event) and f.event == CHALLENGE_EVENT
        )
        assert isinstance(challenge, Event)
        params = self._connect_params(stored.token if stored is not None else None)
        if self._identity is not None:
            params["device"] = self._sign(params, challenge)
        auth = params.get("auth")
        sent_device_token = (
            stored is not None
            and isinstance(auth, dict)
            and auth.get("deviceToken") == stored.token
        )
        request_id = str(uuid.uuid4())
        # Never log these params: they carry the token or password.
        await ws.send_frame(encode_request(request_id, "connect", params), aiohttp.WSMsgType.TEXT)
        frame = await self._receive_until(
            ws, lambda f: isinstance(f, Response) and f.id == request_id
        )
        assert isinstance(frame, Response)
        return frame, sent_device_token

    def _sign(self, params: dict[str, Any], challenge: Event) -> dict[str, Any]:
        """Return the signed ``device`` block for ``params`` and this connection's challenge."""
        assert self._identity is not None
        offered = parse_challenge(challenge)
        if offered.nonce is None:
            raise GatewayConnectionError(
                "connect.challenge carried no nonce; cannot sign the device identity"
            )
        # OpenClaw's docs say to sign with the challenge's ts, which also spares a client
        # with a wrong clock the server's +-2 min window; the local clock is the fallback.
        signed_at = offered.ts if offered.ts is not None else _wall_clock_ms()
        return sign_device(params, self._identity, nonce=offered.nonce, signed_at_ms=signed_at)

    # -- internals: device tokens -----------------------------------------------------------
    # The store does small blocking file I/O (with fsync on writes): run it in a thread.

    async def _stored_device_token(self) -> StoredToken | None:
        """Return the device token stored for this client's role, if any."""
        if self._device_tokens is None:
            return None
        return await asyncio.to_thread(self._device_tokens.get, self._role)

    async def _store_device_token(self, hello: dict[str, Any], stored: StoredToken | None) -> None:
        """Keep the device token ``hello-ok`` carries; a failed write is only logged."""
        if self._device_tokens is None:
            return
        issued = issued_device_token(hello, default_role=self._role, now_ms=_wall_clock_ms())
        if issued is None or issued == stored:  # the gateway returns a valid token as is
            return
        try:
            await asyncio.to_thread(
                self._device_tokens.put,
                issued.role,
                issued.token,
                issued.scopes,
                issued.issued_at_ms,
            )
        except IdentityError as exc:
            self._log.warning("device token not stored: %s", exc)

    async def _forget_device_token(self) -> None:
        """Drop the stored token the gateway rejected, so the next connect goes without it."""
        assert self._device_tokens is not None
        try:
            await asyncio.to_thread(self._device_tokens.forget, self._role)
        except IdentityError as exc:
            self._log.warning("rejected device token not forgotten: %s", exc)
        else:
            self._log.info("gateway rejected the stored %s device token; forgot it", self._role)

    async def _receive_until(
        self, ws: _WebSocket, wanted: Callable[[Event | Response], bool]
    ) -> Event | Response:
        """Read handshake frames until one is ``wanted``; others are ignored."""
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                try:
                    frame = parse_frame(msg.data)
                except FrameError as exc:
                    self._log.warning("ignoring bad frame during handshake: %s", exc)
                    continue
                if wanted(frame):
                    return frame
                self._log.debug("ignoring unexpected frame during handshake")
                continue
            if msg.type is aiohttp.WSMsgType.BINARY:
                self._log.warning("ignoring binary frame during handshake")
                continue
            code, reason = _close_info(ws, msg.type, msg.data, msg.extra)
            raise GatewayConnectionError(
                f"connection closed during handshake (code {code}, reason {reason!r})",
                close_code=code,
                close_reason=reason,
            )

    def _install(self, conn: _Connection) -> None:
        """Make ``conn`` the current connection and start its reader task."""
        self._conn = conn
        self._hello = conn.hello
        self._backoff.reset()
        conn.reader = asyncio.create_task(
            self._read_loop(conn), name=f"clawgate-client-reader {conn.label}"
        )
        policy = conn.hello.get("policy")
        tick_ms = policy.get("tickIntervalMs") if isinstance(policy, dict) else None
        if isinstance(tick_ms, int) and tick_ms > 0:
            conn.start_watchdog(tick_ms / 1000)
        self._set_state(ClientState.OPEN)

    # -- internals: the reader --------------------------------------------------------------

    async def _read_loop(self, conn: _Connection) -> None:
        """Read frames until the socket closes; this task alone calls ``ws.receive()``."""
        ws = conn.ws
        loop = asyncio.get_running_loop()
        code: int | None = None
        reason: str | None = None
        try:
            while True:
                msg = await ws.receive()
                conn.last_rx = loop.time()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._dispatch(conn, msg.data)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    conn.log.warning("ignoring binary frame from the gateway")
                else:
                    code, reason = _close_info(ws, msg.type, msg.data, msg.extra)
                    break
        except asyncio.CancelledError:
            if not conn.silent or conn.closing:
                raise
            # The tick watchdog cancelled us: close like a client that saw no tick, then let
            # the normal connection-lost path (and reconnect) run.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            code, reason = _TICK_TIMEOUT_CODE, "tick timeout"
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await ws.close(code=_TICK_TIMEOUT_CODE, message=b"tick timeout")
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                pass
        except Exception:
            conn.log.exception("reader failed")
            code, reason = ws.close_code, "client reader error"
            try:
                async with asyncio.timeout(_CLOSE_TIMEOUT):
                    await ws.close(code=1011, message=b"client error")
            except (TimeoutError, aiohttp.ClientError, ConnectionError):
                pass
        finally:
            conn.mark_closed(code, reason)
            self._connection_lost(conn)

    def _dispatch(self, conn: _Connection, data: str | bytes) -> None:
        """Route one text frame: a response to its caller, an event to the streams."""
        try:
            frame = parse_frame(data)
        except FrameError as exc:
            conn.log.warning("ignoring bad frame from the gateway: %s", exc)
            return
        if isinstance(frame, Response):
            conn.resolve(frame)
            return
        if frame.event == CHALLENGE_EVENT:
            return
        if frame.seq is not None:
            gap = conn.seq.observe(frame.seq)
            if gap is not None:
                conn.log.warning("event seq gap: expected %d, got %d", *gap)
                if self._on_gap is not None:
                    try:
                        self._on_gap(*gap)
                    except Exception:
                        conn.log.exception("on_gap callback failed")
                else:
                    self._hub.publish_gap(*gap)
        self._hub.publish(frame)

    def _connection_lost(self, conn: _Connection) -> None:
        """React to the end of ``conn``: mark closed, or hand over to the supervisor."""
        if conn is not self._conn:
            return
        self._close_code, self._close_reason = conn.close_code, conn.close_reason
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
            self._hub.end_all()

    # -- internals: reconnecting ------------------------------------------------------------

    async def _supervise(self) -> None:
        """Re-establish the connection each time it is lost, until close() or a fatal error."""
        try:
            await self._supervise_loop()
        except Exception as exc:
            # A bug here must not leave callers waiting on a reconnect that never comes.
            self._log.exception("reconnect supervisor failed")
            self._give_up(exc)

    async def _supervise_loop(self) -> None:
        """Wait for each connection to end, then reconnect; return when there is nothing to do."""
        while True:
            conn = self._conn
            assert conn is not None
            await conn.closed.wait()
            if conn.reader is not None:
                await asyncio.wait([conn.reader])
            if self._state is not ClientState.RECONNECTING:
                return
            new_conn = await self._reconnect_until_open()
            if new_conn is None:
                return
            await self._notify_reconnect(new_conn.hello)

    async def _reconnect_until_open(self) -> _Connection | None:
        """Retry the handshake with backoff; return the new connection, or None on giving up."""
        floor = 0.0
        while True:
            delay = max(self._backoff.next_delay(), floor)
            self._log.info(
                "reconnecting to %s in %.2fs (attempt %d)", self._url, delay, self._backoff.attempts
            )
            await asyncio.sleep(delay)
            if self._state is not ClientState.RECONNECTING:
                return None
            try:
                conn = await self._open()
            except (GatewayError, aiohttp.ClientError, OSError) as exc:
                if is_fatal_handshake_error(exc):
                    self._log.error("reconnect refused, giving up: %s", exc)
                    self._give_up(exc)
                    return None
                floor = retry_floor(exc)
                self._log.warning("reconnect attempt failed: %s", exc)
                continue
            if self._state is not ClientState.RECONNECTING:  # close() raced the handshake
                await conn.aclose()
                return None
            self._install(conn)
            return conn

    def _give_up(self, exc: BaseException) -> None:
        """Stop reconnecting for good: close the client and end the event iterators."""
        self._give_up_error = exc
        if isinstance(exc, GatewayHandshakeError | GatewayConnectionError):
            self._close_code = exc.close_code
            self._close_reason = exc.close_reason
        self._set_state(ClientState.CLOSED)
        self._hub.end_all()

    async def _notify_reconnect(self, hello: dict[str, Any]) -> None:
        """Run the on_reconnect callback; its failure is logged, never raised."""
        if self._on_reconnect is None:
            return
        try:
            result = self._on_reconnect(hello)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._log.exception("on_reconnect callback failed")


def _is_final_payload(payload: Any) -> bool:
    """Return True if a two-response method's first payload is already the final one."""
    if not isinstance(payload, dict):
        return False
    status = payload.get("status")
    return isinstance(status, str) and status != "accepted"


def _close_info(
    ws: _WebSocket, msg_type: aiohttp.WSMsgType, data: object, extra: object
) -> tuple[int | None, str | None]:
    """Return (close code, reason) for a CLOSE/CLOSING/CLOSED/ERROR message."""
    if msg_type is aiohttp.WSMsgType.CLOSE:
        code = data if isinstance(data, int) else ws.close_code
        return code, extra if isinstance(extra, str) and extra else None
    return ws.close_code, None


async def _await_close(ws: _WebSocket) -> tuple[int | None, str | None]:
    """Wait briefly for the close frame that follows a refused handshake."""
    try:
        async with asyncio.timeout(_HANDSHAKE_CLOSE_WAIT):
            while True:
                msg = await ws.receive()
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    return _close_info(ws, msg.type, msg.data, msg.extra)
    except TimeoutError:
        return None, None  # a receive timeout sets ws.close_code to 1006; not the server's
