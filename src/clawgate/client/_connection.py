"""One authenticated WebSocket to the gateway: its reader task, pending requests and watchdog.

Invariants:
- The reader task alone calls ``ws.receive()`` once the connection is started; before that
  only the handshake reads.
- ``mark_closed`` takes effect once per connection and fails every pending request at once,
  so no caller waits on a socket that is gone.
- ``seq`` is this connection's own tracker: the gateway numbers each connection's events from
  1, so a new connection never reads as a gap.
- The tick watchdog closes with 4000 only after two tick intervals without a frame, judged
  by a check that ran on time: a late check means our own loop was blocked, and frames may
  be waiting unread in the socket buffer.
- Every close the client starts is bounded by ``CLOSE_TIMEOUT``, so a dead peer cannot hang it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, MutableMapping
from typing import Any, Final, Literal, TypeAlias

import aiohttp

from ._errors import GatewayConnectionError
from ._frames import CHALLENGE_EVENT, FrameError, Response, SeqTracker, parse_frame
from ._requests import PendingRequests
from ._stream import EventHub

__all__ = [
    "CLOSE_TIMEOUT",
    "ConnLogger",
    "Connection",
    "WebSocket",
    "close_info",
    "close_quietly",
]

_LOGGER = logging.getLogger(__name__)

#: Upper bound on a client-initiated close, so close() cannot hang on a dead peer.
CLOSE_TIMEOUT: Final = 2.0
#: Close code the client sends when the server went silent (protocol §3.6).
_TICK_TIMEOUT_CODE: Final = 4000

#: The client always reads text frames as bytes (``decode_text=False``) for orjson.
WebSocket: TypeAlias = aiohttp.ClientWebSocketResponse[Literal[False]]


class ConnLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefix every line with the connection's label."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = self.extra or {}
        return f"[{extra.get('conn', '-')}] {msg}", kwargs


def close_info(
    ws: WebSocket, msg_type: aiohttp.WSMsgType, data: object, extra: object
) -> tuple[int | None, str | None]:
    """Return (close code, reason) for a CLOSE/CLOSING/CLOSED/ERROR message."""
    if msg_type is aiohttp.WSMsgType.CLOSE:
        code = data if isinstance(data, int) else ws.close_code
        return code, extra if isinstance(extra, str) and extra else None
    return ws.close_code, None


async def close_quietly(ws: WebSocket, code: int = 1000, message: bytes = b"") -> None:
    """Close ``ws`` within ``CLOSE_TIMEOUT``; a peer that is gone or silent is not an error."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await ws.close(code=code, message=message)
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        pass


class Connection:
    """One authenticated WebSocket: its pending requests, seq tracker and reader task."""

    def __init__(self, ws: WebSocket, hello: dict[str, Any], label: str) -> None:
        """Wrap a socket that completed the handshake with ``hello``; nothing reads it yet."""
        self.ws = ws
        self.hello = hello
        self.label = label
        self.log = ConnLogger(_LOGGER, {"conn": label})
        self.pending = PendingRequests()
        self.seq = SeqTracker()
        self.reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.closing = False  # set when the client itself closes this connection
        self.silent = False  # set by the tick watchdog
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.last_rx = asyncio.get_running_loop().time()
        self._watchdog: asyncio.TimerHandle | None = None

    def start(self, events: EventHub, on_lost: Callable[[Connection], None]) -> None:
        """Start the reader task and, if ``hello-ok`` sets a tick interval, the watchdog.

        Args:
            events: Where the events the gateway sends are delivered.
            on_lost: Called once the reader has ended and the connection is marked closed.
        """
        self.reader = asyncio.create_task(
            self._read_loop(events, on_lost), name=f"clawgate-client-reader {self.label}"
        )
        policy = self.hello.get("policy")
        tick_ms = policy.get("tickIntervalMs") if isinstance(policy, dict) else None
        if isinstance(tick_ms, int) and tick_ms > 0:
            self._start_watchdog(tick_ms / 1000)

    async def send(self, data: bytes) -> None:
        """Send one text frame."""
        try:
            await self.ws.send_frame(data, aiohttp.WSMsgType.TEXT)
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise GatewayConnectionError(
                f"send failed: {exc}", close_code=self.ws.close_code
            ) from exc

    async def send_raw(self, data: str | bytes) -> None:
        """Send ``data`` as is: ``str`` as a text frame, ``bytes`` as a binary frame."""
        opcode = aiohttp.WSMsgType.TEXT if isinstance(data, str) else aiohttp.WSMsgType.BINARY
        payload = data.encode() if isinstance(data, str) else data
        try:
            await self.ws.send_frame(payload, opcode)
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise GatewayConnectionError(f"send failed: {exc}") from exc

    def mark_closed(self, code: int | None, reason: str | None) -> None:
        """Record the close and fail every pending request at once."""
        if self.closed.is_set():
            return
        self.close_code = code
        self.close_reason = reason or None
        self._stop_watchdog()
        if self.closing:
            message = "connection closed by the client"
        else:
            message = f"connection closed by the gateway (code {code}"
            message += f", reason {reason!r})" if reason else ")"
        self.pending.fail_all(message, code, reason)
        self.closed.set()

    async def aclose(self, code: int = 1000, reason: bytes = b"") -> None:
        """Close the socket and wait for the reader task to finish."""
        self.closing = True
        self._stop_watchdog()
        await close_quietly(self.ws, code, reason)
        reader = self.reader
        if reader is not None and reader is not asyncio.current_task():
            if not reader.done():
                reader.cancel()
            await asyncio.wait([reader])
        self.mark_closed(code, None)

    def _start_watchdog(self, interval: float) -> None:
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

    def _stop_watchdog(self) -> None:
        """Cancel the tick watchdog."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    async def _read_loop(self, events: EventHub, on_lost: Callable[[Connection], None]) -> None:
        """Read frames until the socket closes; this task alone calls ``ws.receive()``."""
        ws = self.ws
        loop = asyncio.get_running_loop()
        code: int | None = None
        reason: str | None = None
        try:
            while True:
                msg = await ws.receive()
                self.last_rx = loop.time()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._route(msg.data, events)
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    self.log.warning("ignoring binary frame from the gateway")
                else:
                    code, reason = close_info(ws, msg.type, msg.data, msg.extra)
                    break
        except asyncio.CancelledError:
            if not self.silent or self.closing:
                raise
            # The tick watchdog cancelled us: close like a client that saw no tick, then let
            # the normal connection-lost path (and reconnect) run.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            code, reason = _TICK_TIMEOUT_CODE, "tick timeout"
            await close_quietly(ws, _TICK_TIMEOUT_CODE, b"tick timeout")
        except Exception:
            self.log.exception("reader failed")
            code, reason = ws.close_code, "client reader error"
            await close_quietly(ws, 1011, b"client error")
        finally:
            self.mark_closed(code, reason)
            on_lost(self)

    def _route(self, data: str | bytes, events: EventHub) -> None:
        """Route one text frame: a response to its caller, an event to the streams."""
        try:
            frame = parse_frame(data)
        except FrameError as exc:
            self.log.warning("ignoring bad frame from the gateway: %s", exc)
            return
        if isinstance(frame, Response):
            if not self.pending.resolve(frame):
                self.log.debug("ignoring response to unknown id %s", frame.id)
            return
        if frame.event == CHALLENGE_EVENT:
            return
        gap = self.seq.observe(frame.seq) if frame.seq is not None else None
        if gap is not None:
            self.log.warning("event seq gap: expected %d, got %d", *gap)
        events.receive(frame, gap, self.log)
