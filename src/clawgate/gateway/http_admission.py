"""The HTTP port's door: per-address connection cap, request read timeout, one-line errors.

aiohttp waits for a request's headers and body forever and logs a malformed request with a
traceback. `GuardedServer` wraps each connection's protocol: a connection over the address's
cap is closed at once, and one whose request has not arrived in time is closed. The timer runs
twice per request: for the headers (armed when the connection opens or the previous response
is done, so a keep-alive connection cannot idle mid-headers either), then, re-armed by the
`request_read` middleware, for the body until its last byte (`StreamReader.on_eof`); a
handler's own work after that has no deadline here. `OneLineLogger` is the request handler's
logger: "Error handling request" becomes one warning line with the error's text.

aiohttp has no public hook for this (its `read_bufsize`, `max_line_size` and `timeout`-like
arguments bound sizes and keep-alive, not a slow sender), so `listen` makes the listening
socket itself around the runner's public `server` protocol factory instead of a `TCPSite`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import StreamReader, web

from ..protocol.http_admission import ConnectionCap

__all__ = ["GuardedServer", "OneLineLogger"]

logger = logging.getLogger("clawgate.gateway.http")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: How many connections the kernel queues before `accept` (aiohttp's `TCPSite` default).
_BACKLOG = 128


class OneLineLogger:
    """What aiohttp's request handler logs through: errors as one warning line, no traceback."""

    def __init__(self, target: logging.Logger) -> None:
        self._target = target

    def exception(self, msg: str, *args: Any, exc_info: Any = None, **_: Any) -> None:
        error = exc_info if isinstance(exc_info, BaseException) else None
        text = " ".join(str(error).split())[:200] if error else ""
        detail = f"{type(error).__name__}: {text}" if error else "error"
        self._target.warning(msg + " (%s)", *args, detail)

    def debug(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("exc_info", None)
        self._target.debug(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class _Awaiting(enum.Enum):
    """What part of a request the connection's timer waits for."""

    HEADERS = "headers"
    BODY = "body"


class _Guarded(asyncio.Protocol):
    def __init__(self, inner: Any, door: GuardedServer) -> None:
        self._inner = inner
        self._door = door
        self._ip: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._counted = False
        self._awaiting = _Awaiting.HEADERS
        self._heard = False  # bytes arrived since the timer was armed
        self.timed_out = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if not self._door.cap.admit(ip):
            logger.warning("HTTP connection from %s refused: too many open connections", ip)
            transport.close()
            return
        self._ip = ip
        self._counted = True
        self._transport = transport
        self._door.by_transport[transport] = self
        self.arm()
        self._inner.connection_made(transport)

    def arm(self) -> None:
        """Wait for the next request's headers, at most the read timeout."""
        self._start(_Awaiting.HEADERS)

    def await_body(self, body: StreamReader) -> None:
        """Wait for this request's body to end."""
        self._start(_Awaiting.BODY)
        timer = self._timer
        # Bound to this timer: a body that ends after its response is done (aiohttp drains
        # it) must not disarm the next request's header timer.
        body.on_eof(lambda: self._body_ended(timer))

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _start(self, awaiting: _Awaiting) -> None:
        self.disarm()
        self._awaiting = awaiting
        self._heard = False
        delay = self._door.read_timeout_ms / 1000
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def _body_ended(self, timer: asyncio.TimerHandle | None) -> None:
        if timer is not None and timer is self._timer:
            self.disarm()

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            self.timed_out = True
            if self._awaiting is _Awaiting.HEADERS and not self._heard:
                # An idle keep-alive or a browser's preconnect: normal, not worth a warning.
                logger.debug(
                    "HTTP client %s closed: idle for %d ms", self._ip, self._door.read_timeout_ms
                )
                self._transport.close()
                return
            logger.warning(
                "HTTP client %s closed: request %s not received within %d ms",
                self._ip,
                self._awaiting.value,
                self._door.read_timeout_ms,
            )
            self._transport.close()

    def release(self) -> None:
        """Stop counting this connection toward its address's cap."""
        if self._counted:
            self._counted = False
            self._door.cap.release(self._ip or "")

    def data_received(self, data: bytes) -> None:
        if self._ip is not None:
            self._heard = True
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._ip is not None else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ip is None:
            return
        self.disarm()
        self._door.by_transport.pop(self._transport, None)
        self.release()
        self._ip = None
        self._inner.connection_lost(exc)


class GuardedServer:
    """Protocol factories around aiohttp's server: cap per address and a request read timeout."""

    def __init__(self, *, read_timeout_ms: int, per_ip: int) -> None:
        self.read_timeout_ms = read_timeout_ms
        self.cap = ConnectionCap(per_ip)
        self.by_transport: dict[Any, _Guarded] = {}

    def around(self, server: Callable[[], Any]) -> Callable[[], _Guarded]:
        """Return the protocol factory that guards each connection `server` makes."""
        return lambda: _Guarded(server(), self)

    async def listen(
        self,
        runner: web.AppRunner,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
    ) -> asyncio.Server:
        """Listen on `host:port`, each connection guarded and served by `runner` (set up).

        The caller closes the returned server before `runner.cleanup()`, which closes the
        connections it serves.
        """
        server = runner.server
        if server is None:
            raise RuntimeError("set the runner up before listening")
        return await asyncio.get_running_loop().create_server(
            self.around(server), host, port, ssl=ssl_context, backlog=_BACKLOG
        )

    @web.middleware
    async def request_read(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Give this request's body the read timeout; wait for the next headers once answered."""
        guarded = self.by_transport.get(request.transport)
        if guarded is not None:
            guarded.await_body(request.content)
            if request.headers.get("Upgrade", "").lower() == "websocket":
                # A WebSocket is admitted by the gateway's own per-address slots and auth.
                guarded.release()
        try:
            return await handler(request)
        except ConnectionResetError:
            if guarded is not None and guarded.timed_out:
                # Closed here at the read timeout and logged then: no second line for it.
                return web.Response(status=408)
            raise
        finally:
            transport = request.transport
            if guarded is not None and transport is not None and not transport.is_closing():
                guarded.arm()
