"""One plugin connection: register phase, then reader, writer and request tasks (spec §2).

Invariants:
- Every outbound byte goes through `_enqueue`; one writer task owns the socket's send side,
  so frames never interleave. It writes every frame queued so far in one call: whole frames,
  in queue order, so a burst of requests costs one syscall and wakes the plugin once.
- Nothing but responses is written before a successful `register` (§2.3).
- Disconnect handling (`_lost`) runs once, synchronously: the registry drops the session
  and every pending daemon-to-plugin request fails with `PLUGIN_DISCONNECTED` before any
  other task can route to the plugin again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final

from ..protocol.ipc.frames import (
    ALREADY_REGISTERED,
    INTERNAL,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    NOT_REGISTERED,
    PLUGIN_DISCONNECTED,
    TIMEOUT,
    Event,
    Frame,
    IpcError,
    Request,
    Response,
    encode_error,
    encode_event,
    encode_request,
    encode_response,
)
from ..protocol.ipc.reader import FrameReader
from ..protocol.ipc.registration import negotiate_protocol, parse_register, register_result
from .registry import PluginRegistry, PluginSession

__all__ = [
    "ConnectionSettings",
    "ConnectionState",
    "Handler",
    "IpcConnection",
    "rfc3339_ms",
]

logger = logging.getLogger(__name__)

Handler = Callable[[PluginSession, dict[str, Any]], Awaitable[dict[str, Any]]]

_READ_CHUNK: Final = 65_536
# After an error frame the connection is flushed and closed within this time (§2.1).
_CLOSE_WITHIN_S: Final = 1.0
# A plugin that lets this much output pile up is not reading; it is dropped.
_MAX_QUEUED_BYTES: Final = 16 * 1_048_576


def rfc3339_ms(seconds: float) -> str:
    """Format epoch seconds as an RFC 3339 UTC time with millisecond precision."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """What every connection of one server shares."""

    daemon_id: str
    daemon_version: str
    registry: PluginRegistry
    handlers: dict[str, Handler]
    clock: Callable[[], float]
    cloud_connected: Callable[[], bool]
    request_timeout_s: float
    register_timeout_s: float
    ping_interval_s: float
    ping_timeout_s: float


class ConnectionState(Enum):
    """Where a connection is in its life."""

    AWAITING_REGISTER = "awaiting-register"
    REGISTERED = "registered"
    CLOSING = "closing"


class IpcConnection:
    """Serve one accepted plugin socket until it closes."""

    def __init__(
        self,
        settings: ConnectionSettings,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.settings = settings
        self.conn_id = str(uuid.uuid4())
        self.state = ConnectionState.AWAITING_REGISTER
        self.session: PluginSession | None = None
        self.log = logging.LoggerAdapter(logger, {"conn": self.conn_id})
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._queue: deque[bytes] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._close_requested = False
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # Request ids: unique among this connection's pending requests (§2.2), and cheaper
        # than a UUID per request; the random prefix keeps them apart across connections.
        self._request_prefix = secrets.token_hex(4)
        self._request_serial = itertools.count(1)
        self._handler_tasks: set[asyncio.Task[None]] = set()
        self._registered = asyncio.Event()
        self._last_inbound = self._loop.time()
        self._disconnected = False
        self._abort_handle: asyncio.TimerHandle | None = None

    # -- life cycle ---------------------------------------------------------------

    async def serve(self) -> None:
        """Run reader, writer and watchdog until the socket closes."""
        writer_task = asyncio.create_task(self._write_loop())
        watchdog = asyncio.create_task(self._watchdog())
        try:
            await self._read_loop()
        except (ConnectionError, OSError) as exc:
            self.log.info("read failed: %s", exc)
        finally:
            self._lost("connection closed")
            self.close()
            watchdog.cancel()
            for task in self._handler_tasks:
                task.cancel()
            await asyncio.gather(watchdog, *self._handler_tasks, return_exceptions=True)
            try:
                async with asyncio.timeout(_CLOSE_WITHIN_S * 2):
                    await writer_task
            except TimeoutError:
                writer_task.cancel()
                self._writer.transport.abort()

    def close(self) -> None:
        """Flush what is queued, then close the socket within about a second."""
        if self._close_requested:
            return
        self._close_requested = True
        self.state = ConnectionState.CLOSING
        self._wakeup.set()
        # A peer that stops reading must not keep the socket open past the deadline.
        self._abort_handle = self._loop.call_later(_CLOSE_WITHIN_S, self._abort_if_open)

    def disconnect(self, reason: str) -> None:
        """Treat the plugin as gone now (§2.10), then close the socket."""
        self._lost(reason)
        self.close()

    def in_flight(self) -> list[asyncio.Future[Any]]:
        """Return the requests in flight in either direction, as futures to wait on."""
        return [*self._pending.values(), *self._handler_tasks]

    def _abort_if_open(self) -> None:
        if not self._writer.transport.is_closing():
            self._writer.transport.abort()

    def _lost(self, reason: str) -> None:
        if self._disconnected:
            return
        self._disconnected = True
        session = self.session
        if session is not None:
            self.log.info("plugin %s disconnected: %s", session.name, reason)
        error = IpcError(PLUGIN_DISCONNECTED, "the plugin disconnected")
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
        if session is not None:
            self.settings.registry.remove(session)

    # -- writing ------------------------------------------------------------------

    def _enqueue(self, frame: bytes) -> None:
        if self._close_requested:
            return
        self._queue.append(frame)
        self._queued_bytes += len(frame)
        self._wakeup.set()
        if self._queued_bytes > _MAX_QUEUED_BYTES:
            self.log.warning("plugin is not reading; %d bytes queued", self._queued_bytes)
            self.disconnect("slow consumer")

    async def _write_loop(self) -> None:
        writer = self._writer
        queue = self._queue
        try:
            while True:
                while queue:
                    if writer.transport.is_closing():
                        return  # closed under us (slow consumer, abort): nothing to write to
                    frames = b"".join(queue)
                    queue.clear()
                    self._queued_bytes -= len(frames)
                    writer.write(frames)
                    await writer.drain()
                if self._close_requested:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
        except (ConnectionError, OSError, RuntimeError):
            # RuntimeError: uvloop's write on a transport closed meanwhile; the peer is gone
            # either way, and the disconnect is logged once where it was decided.
            pass
        finally:
            writer.close()
            try:
                async with asyncio.timeout(_CLOSE_WITHIN_S):
                    await writer.wait_closed()
            except (TimeoutError, ConnectionError, OSError):
                writer.transport.abort()
            if self._abort_handle is not None:
                self._abort_handle.cancel()

    def send_event(self, name: str, payload: dict[str, Any]) -> None:
        """Queue an event frame."""
        self._enqueue(encode_event(name, payload))

    def _fail_and_close(self, error: IpcError, reply_id: str | None) -> None:
        self._enqueue(encode_error(reply_id, error))
        self.close()

    # -- daemon to plugin requests -------------------------------------------------

    async def request(
        self, method: str, params: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        """Send a request to the plugin and wait for its payload."""
        return await self.start_request(method, params, timeout_s)

    def start_request(
        self, method: str, params: dict[str, Any], timeout_s: float
    ) -> asyncio.Future[dict[str, Any]]:
        """Queue a request to the plugin now; return the future of its payload.

        The future fails with `IpcError`: `TIMEOUT` after `timeout_s`, `PLUGIN_DISCONNECTED`,
        or the plugin's error. Cancelling it abandons the request: a late reply is discarded.
        """
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        if self._disconnected or self._close_requested:
            future.set_exception(IpcError(PLUGIN_DISCONNECTED, "the plugin disconnected"))
            return future
        request_id = f"{self._request_prefix}-{next(self._request_serial)}"
        try:
            # INVALID_PARAMS above 1 MiB: the plugin would close on the frame (§2.1).
            frame = encode_request(request_id, method, params)
        except IpcError as exc:
            future.set_exception(exc)
            return future
        except TypeError as exc:  # orjson: a value JSON cannot hold; a retry fails alike
            error = IpcError(
                INVALID_PARAMS, f"{method} params are not JSON: {exc}", retryable=False
            )
            future.set_exception(error)
            return future
        self._pending[request_id] = future
        self._enqueue(frame)
        timer = self._loop.call_later(timeout_s, self._time_out, future, method, timeout_s)

        def finished(_: asyncio.Future[dict[str, Any]]) -> None:
            timer.cancel()
            # A late reply then finds no pending entry and is discarded (§2.8).
            self._pending.pop(request_id, None)

        future.add_done_callback(finished)
        return future

    @staticmethod
    def _time_out(future: asyncio.Future[dict[str, Any]], method: str, timeout_s: float) -> None:
        if not future.done():
            future.set_exception(
                IpcError(TIMEOUT, f"{method} got no response within {timeout_s:g} s")
            )

    # -- reading ------------------------------------------------------------------

    async def _read_loop(self) -> None:
        reader = FrameReader()
        while not self._close_requested:
            data = await self._reader.read(_READ_CHUNK)
            if not data:
                return
            self._last_inbound = self._loop.time()
            for frame in reader.receive_data(data):
                self._receive(frame)
                if self._close_requested:
                    return
            error = reader.error
            if error is not None:
                self.log.warning("bad frame from plugin: %s %s; closing", error.code, error.message)
                self._fail_and_close(error, error.reply_id)
                return

    def _receive(self, frame: Frame) -> None:
        if isinstance(frame, Request):
            self._receive_request(frame)
        elif isinstance(frame, Response):
            self._receive_response(frame)
        elif isinstance(frame, Event):
            self.log.debug("ignoring plugin event %s", frame.event)
        else:
            self.log.debug("ignoring frame of unknown type %.64r", frame.type)

    def _receive_response(self, response: Response) -> None:
        if response.id is None:
            error = response.error
            self.log.error(
                "plugin reported a connection error: %s %s",
                error.code if error else "?",
                error.message if error else "",
            )
            return
        future = self._pending.pop(response.id, None)
        if future is None or future.done():
            self.log.debug("discarding response to unknown request %s", response.id)
            return
        if response.ok:
            future.set_result(response.payload)
        else:
            assert response.error is not None
            future.set_exception(response.error)

    def _receive_request(self, request: Request) -> None:
        if request.method == "register":
            self._register(request)
        elif self.state is not ConnectionState.REGISTERED:
            error = IpcError(NOT_REGISTERED, "register first")
            self._enqueue(encode_error(request.id, error))
        elif request.method == "ping":
            now = rfc3339_ms(self.settings.clock())
            self._enqueue(encode_response(request.id, {"now": now}))
        elif request.method in self.settings.handlers:
            task = asyncio.create_task(self._run_handler(request))
            self._handler_tasks.add(task)
            task.add_done_callback(self._handler_tasks.discard)
        else:
            error = IpcError(METHOD_NOT_FOUND, f"unknown method {request.method}")
            self._enqueue(encode_error(request.id, error))

    async def _run_handler(self, request: Request) -> None:
        handler = self.settings.handlers[request.method]
        assert self.session is not None
        try:
            payload = await handler(self.session, request.params)
            # Encoded inside the try: an unencodable or oversized payload is answered, too.
            frame = encode_response(request.id, payload)
        except IpcError as exc:
            self._enqueue(encode_error(request.id, exc))
        except Exception:
            self.log.exception("handler for %s failed", request.method)
            self._enqueue(encode_error(request.id, IpcError(INTERNAL, "internal error")))
        else:
            self._enqueue(frame)

    def _register(self, request: Request) -> None:
        settings = self.settings
        if self.state is ConnectionState.REGISTERED:
            error = IpcError(ALREADY_REGISTERED, "this connection is already registered")
            self._enqueue(encode_error(request.id, error))
            return
        try:
            params = parse_register(request.params)
            version = negotiate_protocol(params.protocol_version, params.min_protocol_version)
        except IpcError as exc:
            self.log.info("register refused: %s", exc.message)
            self._enqueue(encode_error(request.id, exc))
            if exc.code != INVALID_PARAMS:
                self.close()  # UNSUPPORTED_PROTOCOL closes the connection (§2.4)
            return
        session = PluginSession(
            name=params.name,
            version=params.version,
            capabilities=params.capabilities,
            protocol_version=version,
            connection_id=self.conn_id,
            connected_at=settings.clock(),
            link=self,
            pid=params.pid,
            runtime=params.runtime,
            default_timeout_s=settings.request_timeout_s,
        )
        self.session = session
        self.state = ConnectionState.REGISTERED
        self.log = logging.LoggerAdapter(logger, {"conn": self.conn_id, "plugin": params.name})
        replaced = settings.registry.add(session)
        if replaced is not None:
            replaced_link = replaced._link
            if isinstance(replaced_link, IpcConnection):
                replaced_link.disconnect("replaced by a new connection")
            else:
                settings.registry.remove(replaced)
        self._enqueue(
            encode_response(
                request.id,
                register_result(
                    daemon_version=settings.daemon_version,
                    protocol_version=version,
                    daemon_id=settings.daemon_id,
                    connection_id=self.conn_id,
                    cloud_connected=settings.cloud_connected(),
                ),
            )
        )
        self._registered.set()
        self.log.info(
            "plugin %s %s registered with %s", params.name, params.version, params.capabilities
        )
        # After the response is queued: events the hook sends (cloud.status) follow it.
        settings.registry.announce(session)

    # -- liveness -----------------------------------------------------------------

    async def _watchdog(self) -> None:
        settings = self.settings
        try:
            async with asyncio.timeout(settings.register_timeout_s):
                await self._registered.wait()
        except TimeoutError:
            self.log.info("no register within %g s; closing", settings.register_timeout_s)
            self.close()
            return
        failures = 0
        while not self._disconnected:
            idle = self._loop.time() - self._last_inbound
            if idle < settings.ping_interval_s:
                await asyncio.sleep(settings.ping_interval_s - idle)
                continue
            try:
                await self.request("ping", {}, settings.ping_timeout_s)
            except IpcError as exc:
                if exc.code != TIMEOUT:
                    if exc.code == PLUGIN_DISCONNECTED:
                        return
                    failures = 0  # it answered, if only with an error: it is alive
                    continue
                failures += 1
                self.log.info("ping %d failed", failures)
                if failures >= 2:
                    self.disconnect("two consecutive pings failed")
                    return
            else:
                failures = 0
