"""Opening a connection: socket, challenge, ``connect``, and the device token (spec §4, §5).

Invariants:
- Nothing is sent before the challenge, and exactly one frame before ``hello-ok``: the
  ``connect`` request, whose device signature covers this connection's nonce.
- The whole open (TCP, TLS, upgrade, handshake) has one deadline, ``connect_timeout``.
- A pinned TLS fingerprint is checked by aiohttp right after the TLS handshake, before the
  upgrade request: no header, token or password reaches a server that does not match.
- The ``connect`` params are never logged: they carry the token or password.
- A stored device token the gateway refuses (``AUTH_DEVICE_TOKEN_MISMATCH``) is forgotten,
  so the next connect goes without it; a newly issued one is stored before the connection
  is handed out.
- A failed open closes its socket on every way out.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any, Final, Protocol

import aiohttp

import clawgate

from ._connection import (
    CLOSE_TIMEOUT,
    Connection,
    ConnLogger,
    WebSocket,
    close_info,
    close_quietly,
)
from ._device import DeviceAuth
from ._errors import GatewayConnectionError, GatewayError, GatewayTimeoutError
from ._frames import (
    AUTH_DEVICE_TOKEN_MISMATCH,
    CHALLENGE_EVENT,
    Event,
    FrameError,
    Response,
    encode_request,
    parse_frame,
)
from ._identity import StoredToken, parse_tls_fingerprint

__all__ = [
    "DEFAULT_CLIENT_VERSION",
    "DEFAULT_MAX_MSG_SIZE",
    "ConnectParams",
    "Dialer",
]

_LOGGER = logging.getLogger(__name__)

DEFAULT_MAX_MSG_SIZE: Final = 26_214_400 + 1024 * 1024
#: How long to wait for the close frame that follows a refused ``connect``.
_HANDSHAKE_CLOSE_WAIT: Final = 1.0


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


class ConnectParams(Protocol):
    """Build this client's ``connect`` params, without the ``device`` block."""

    def __call__(self, *, device_token: str | None = None) -> dict[str, Any]:
        """Return the params, with ``auth.deviceToken`` when ``device_token`` is given."""
        ...


class Dialer:
    """Open authenticated connections to one gateway URL, as one client."""

    def __init__(
        self,
        url: str,
        connect_params: ConnectParams,
        *,
        device: DeviceAuth,
        connect_timeout: float,
        session: aiohttp.ClientSession | None,
        max_msg_size: int,
        tls_fingerprint: str | None,
    ) -> None:
        """Prepare to open connections as ``connect_params`` describe; nothing is opened.

        Raises:
            ValueError: ``tls_fingerprint`` is malformed or the URL is not ``wss://``.
        """
        ssl: bool | aiohttp.Fingerprint = True  # aiohttp's default: verify against the CAs
        if tls_fingerprint is not None:
            digest = parse_tls_fingerprint(tls_fingerprint)
            if urllib.parse.urlsplit(url).scheme.lower() not in ("wss", "https"):
                raise ValueError("tls_fingerprint needs a wss:// URL")
            ssl = aiohttp.Fingerprint(digest)
        self._url = url
        self.connect_params = connect_params
        self._connect_timeout = connect_timeout
        self._session = session
        self._owns_session = session is None
        self._max_msg_size = max_msg_size
        self._device = device
        self._ssl = ssl
        self._log = ConnLogger(_LOGGER, {"conn": url})

    async def open(self) -> Connection:
        """Open a socket and run the handshake; return the authenticated connection.

        Raises:
            GatewayHandshakeError: The gateway refused the ``connect`` request.
            GatewayConnectionError: The socket could not be opened or closed early.
            GatewayTimeoutError: The handshake did not finish within ``connect_timeout``.
        """
        session = await self._ensure_session()
        stored = await self._device.stored()
        ws: WebSocket | None = None
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
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT),
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
                    await self._device.forget()
                raise error
            hello = response.payload if isinstance(response.payload, dict) else {}
            await self._device.store(hello, stored)
        except BaseException:
            if ws is not None and not ws.closed:
                await close_quietly(ws)
            raise
        server = hello.get("server")
        conn_id = server.get("connId") if isinstance(server, dict) else None
        label = str(conn_id)[:8] if conn_id else self._url
        conn = Connection(ws, hello, label)
        conn.log.info("connected to %s (protocol %s)", self._url, hello.get("protocol"))
        return conn

    async def release_session(self) -> None:
        """Close the aiohttp session if the dialer created it."""
        if self._owns_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def _ensure_session(self) -> aiohttp.ClientSession:
        """Return the aiohttp session, creating the owned one if needed."""
        if self._session is None or self._session.closed:
            if not self._owns_session:
                raise GatewayConnectionError("the provided aiohttp session is closed")
            self._session = aiohttp.ClientSession()
        return self._session

    async def _handshake(self, ws: WebSocket, stored: StoredToken | None) -> tuple[Response, bool]:
        """Wait for the challenge, send ``connect`` and return its response.

        Returns:
            The response, and whether ``auth.deviceToken`` carried the stored token.
        """
        challenge = await self._receive_until(
            ws, lambda f: isinstance(f, Event) and f.event == CHALLENGE_EVENT
        )
        assert isinstance(challenge, Event)
        params = self.connect_params(device_token=stored.token if stored is not None else None)
        device = self._device.sign(params, challenge)
        if device is not None:
            params["device"] = device
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

    async def _receive_until(
        self, ws: WebSocket, wanted: Callable[[Event | Response], bool]
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
            code, reason = close_info(ws, msg.type, msg.data, msg.extra)
            raise GatewayConnectionError(
                f"connection closed during handshake (code {code}, reason {reason!r})",
                close_code=code,
                close_reason=reason,
            )


async def _await_close(ws: WebSocket) -> tuple[int | None, str | None]:
    """Wait briefly for the close frame that follows a refused handshake."""
    try:
        async with asyncio.timeout(_HANDSHAKE_CLOSE_WAIT):
            while True:
                msg = await ws.receive()
                if msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    return close_info(ws, msg.type, msg.data, msg.extra)
    except TimeoutError:
        return None, None  # a receive timeout sets ws.close_code to 1006; not the server's
