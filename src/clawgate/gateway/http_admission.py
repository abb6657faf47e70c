"""The HTTP port's door: per-address connection cap, header timeout, one-line parse errors.

aiohttp waits for request headers forever and logs a malformed request with a traceback.
`GuardedServer` wraps each connection's protocol: a connection over the address's cap is
closed at once, and one whose request headers have not arrived within the timeout is closed
(the `header_seen` middleware disarms the timer; it re-arms when a response is done, so a
keep-alive connection cannot idle mid-headers either). `OneLineLogger` is the request
handler's logger: "Error handling request" becomes one warning line with the error's text.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..protocol.http_admission import ConnectionCap

__all__ = ["GuardedServer", "GuardedSite", "OneLineLogger"]

logger = logging.getLogger("clawgate.gateway.http")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


class _Guarded(asyncio.Protocol):
    def __init__(self, inner: Any, door: GuardedServer) -> None:
        self._inner = inner
        self._door = door
        self._ip: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._counted = False

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
        self.disarm()
        delay = self._door.header_timeout_s
        self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        if self._transport is not None and not self._transport.is_closing():
            logger.warning("HTTP client %s closed: no request headers in time", self._ip)
            self._transport.close()

    def release(self) -> None:
        """Stop counting this connection toward its address's cap."""
        if self._counted:
            self._counted = False
            self._door.cap.release(self._ip or "")

    def data_received(self, data: bytes) -> None:
        if self._ip is not None:
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
    """Protocol factories around aiohttp's server: cap per address and a header timeout."""

    def __init__(self, *, header_timeout_ms: int, per_ip: int) -> None:
        self.header_timeout_s = header_timeout_ms / 1000
        self.cap = ConnectionCap(per_ip)
        self.by_transport: dict[Any, _Guarded] = {}

    def around(self, server: Callable[[], Any]) -> Callable[[], _Guarded]:
        """Return the protocol factory that guards each connection `server` makes."""
        return lambda: _Guarded(server(), self)

    @web.middleware
    async def header_seen(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Disarm the connection's header timer for this request; re-arm once it is answered."""
        guarded = self.by_transport.get(request.transport)
        if guarded is not None:
            guarded.disarm()
            if request.headers.get("Upgrade", "").lower() == "websocket":
                # A WebSocket is admitted by the gateway's own per-address slots and auth.
                guarded.release()
        try:
            return await handler(request)
        finally:
            transport = request.transport
            if guarded is not None and transport is not None and not transport.is_closing():
                guarded.arm()


class GuardedSite(web.TCPSite):
    """aiohttp's TCP site, its connections made through a `GuardedServer`."""

    def __init__(
        self, runner: web.AppRunner, door_of: Callable[[Any], Callable[[], Any]], **kw: Any
    ):
        super().__init__(runner, **kw)
        self._door_of = door_of

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._door_of(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
