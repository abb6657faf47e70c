"""The plugin client: connect to the daemon socket, register, serve requests, reconnect.

One ``Plugin`` owns at most one ``_PluginConnection`` at a time. Each connection runs, inside
one task group, a reader, the single writer (so frames never interleave), an event task (so
events reach handlers in arrival order) and one task per incoming request. Ending a
connection cancels all of them; ``Plugin.stop`` ends the current one and waits for ``run``
to return, so nothing outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from ..client import Backoff
from ..protocol.ipc.frames import (
    ALREADY_REGISTERED,
    INTERNAL,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    TIMEOUT,
    UNSUPPORTED_PROTOCOL,
    Event,
    Frame,
    FrameError,
    IpcError,
    Request,
    Response,
    encode_error,
    encode_request,
    encode_response,
)
from ..protocol.ipc.framing import MAX_FRAME_BYTES
from ..protocol.ipc.reader import FrameReader
from ..protocol.ipc.registration import PROTOCOL_MAX, parse_register, register_params
from ..protocol.ipc.timeouts import DEFAULT_REQUEST_TIMEOUT_S, DEFAULT_TIMEOUTS_S
from ._errors import NotConnectedError, PluginError

__all__ = [
    "PROTOCOL_VERSION",
    "EventHandler",
    "Opener",
    "Plugin",
    "PluginState",
    "RequestHandler",
    "default_socket_path",
]

#: The highest protocol version the SDK speaks; it speaks every version the wire module does.
PROTOCOL_VERSION: Final = PROTOCOL_MAX
#: Registration errors that a reconnect cannot fix.
FATAL_REGISTER_CODES: Final = frozenset({UNSUPPORTED_PROTOCOL, INVALID_PARAMS, ALREADY_REGISTERED})
CONNECT_TIMEOUT: Final = 5.0
CLOSE_FLUSH_TIMEOUT: Final = 1.0
READ_CHUNK: Final = 64 * 1024
OUTBOX_MAX: Final = 256

RequestHandler = Callable[[dict[str, Any]], Awaitable[Mapping[str, Any] | None]]
EventHandler = Callable[[dict[str, Any]], Awaitable[None]]
Opener = Callable[[str], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
_H = TypeVar("_H", bound=RequestHandler)
_E = TypeVar("_E", bound=EventHandler)

_log = logging.getLogger(__name__)


class PluginState(enum.Enum):
    """Where a plugin is in its connection life cycle."""

    IDLE = "idle"
    CONNECTING = "connecting"
    REGISTERED = "registered"
    BACKOFF = "backoff"
    STOPPED = "stopped"


def default_socket_path() -> Path:
    """Return ``$CLAWGATE_HOME/gateway.sock`` (home defaults to ``~/.clawgate``)."""
    home = os.environ.get("CLAWGATE_HOME")
    base = Path(home) if home else Path.home() / ".clawgate"
    return base / "gateway.sock"


async def _open_unix(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the daemon socket; our own decoder enforces the frame limit."""
    return await asyncio.open_unix_connection(path, limit=MAX_FRAME_BYTES + 2)


class _Adapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefix every line with the plugin name and connection id."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = self.extra or {}
        return f"[{extra.get('plugin')} {extra.get('conn')}] {msg}", kwargs


def _plugin_error(error: IpcError) -> PluginError:
    """Return `error` under the SDK's public exception type."""
    return PluginError(error.code, error.message, retryable=error.retryable, details=error.details)


def _check_registration(name: str, version: str, capabilities: list[str]) -> None:
    """Apply the daemon's own `register` rules (spec §2.3) before connecting.

    Raises:
        ValueError: Listing every rule the name, version or capabilities break.
    """
    try:
        parse_register(register_params(name=name, version=version, capabilities=capabilities))
    except IpcError as exc:
        errors = (exc.details or {}).get("errors", [])
        problems = "; ".join(f"{e['path']} {e['message']}" for e in errors)
        raise ValueError(f"invalid plugin registration: {problems or exc.message}") from None


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How one connection attempt ended."""

    registered: bool
    fatal: PluginError | None = None


class _PluginConnection:
    """One live socket to the daemon: reader, single writer, event and handler tasks."""

    def __init__(
        self,
        plugin: Plugin,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._plugin = plugin
        self._reader = reader
        self._writer = writer
        self._frames = FrameReader()
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=OUTBOX_MAX)
        # Events are rare and small; an unbounded queue keeps the reader from blocking on them.
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._tg: asyncio.TaskGroup | None = None
        self.closed = asyncio.Event()
        self.log = _Adapter(_log, {"plugin": plugin.name, "conn": "-"})

    def start(self, tg: asyncio.TaskGroup) -> None:
        """Start the reader, writer and event tasks in ``tg``."""
        self._tg = tg
        self._spawn(self._read_loop())
        self._spawn(self._write_loop())
        self._spawn(self._event_loop())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self._tg is not None
        task = self._tg.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def abort(self) -> None:
        """End the connection: fail pending requests and cancel every task (idempotent)."""
        self.closed.set()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(NotConnectedError("connection to the daemon was lost"))
        self._pending.clear()
        for task in list(self._tasks):
            task.cancel()

    async def close_transport(self) -> None:
        """Close the socket, waiting briefly for it to go."""
        self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_FLUSH_TIMEOUT):
                await self._writer.wait_closed()

    async def send(self, data: bytes) -> None:
        """Queue one encoded frame for the writer."""
        if self.closed.is_set():
            raise NotConnectedError()
        await self._outbox.put(data)

    async def request(self, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a request and wait for its payload.

        Raises:
            PluginError: The daemon's error, or ``TIMEOUT``.
            NotConnectedError: If the connection is or goes down.
        """
        if self.closed.is_set():
            raise NotConnectedError()
        frame_id = str(uuid.uuid4())
        try:
            # INVALID_PARAMS above 1 MiB: the daemon would close on the frame (§2.1).
            data = encode_request(frame_id, method, params)
        except IpcError as exc:
            raise _plugin_error(exc) from None
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[frame_id] = fut
        try:
            async with asyncio.timeout(timeout):
                await self.send(data)
                return await fut
        except TimeoutError:
            raise PluginError(
                TIMEOUT, f"no response to {method} within {timeout:g} s", retryable=True
            ) from None
        finally:
            self._pending.pop(frame_id, None)

    async def _write_loop(self) -> None:
        try:
            while True:
                data = await self._outbox.get()
                try:
                    self._writer.write(data)
                    await self._writer.drain()
                finally:
                    self._outbox.task_done()
        except (ConnectionError, OSError) as exc:
            self.log.info("write failed: %s", type(exc).__name__)
            self.closed.set()

    async def _read_loop(self) -> None:
        try:
            while True:
                chunk = await self._reader.read(READ_CHUNK)
                if not chunk:
                    self.log.info("daemon closed the connection")
                    break
                for frame in self._frames.receive_data(chunk):
                    self._dispatch(frame)
                error = self._frames.error
                if error is not None:
                    self.log.warning("bad frame from daemon: %s %s", error.code, error.message)
                    await self._fail(error)
                    break
        except (ConnectionError, OSError) as exc:
            self.log.info("read failed: %s", type(exc).__name__)
        finally:
            self.closed.set()

    async def _fail(self, exc: FrameError) -> None:
        """Send a connection-level error frame and give the writer 1 s to flush it."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_FLUSH_TIMEOUT):
                await self.send(encode_error(exc.reply_id, exc))
                await self._outbox.join()

    def _dispatch(self, frame: Frame) -> None:
        if isinstance(frame, Request):
            self._spawn(self._handle_request(frame))
        elif isinstance(frame, Response):
            self._resolve(frame)
        elif isinstance(frame, Event):
            self._events.put_nowait(frame)
        else:
            self.log.debug("ignoring frame of unknown type %.64r", frame.type)

    def _resolve(self, frame: Response) -> None:
        if frame.id is None:
            err = frame.error
            self.log.error(
                "connection-level error from daemon: %s %s",
                err.code if err else "?",
                err.message if err else "",
            )
            return
        fut = self._pending.get(frame.id)
        if fut is None or fut.done():
            self.log.debug("discarding response to unknown or expired request %s", frame.id)
            return
        if frame.ok:
            fut.set_result(frame.payload)
        else:
            assert frame.error is not None
            fut.set_exception(_plugin_error(frame.error))

    async def _handle_request(self, req: Request) -> None:
        data = await self._plugin._answer(req, self.log)
        with contextlib.suppress(NotConnectedError):
            await self.send(data)

    async def _event_loop(self) -> None:
        while True:
            ev = await self._events.get()
            if ev.event == "daemon.shutdown":
                self.log.info("daemon shutting down (%s)", ev.payload.get("reason"))
            for handler in self._plugin._event_handlers.get(ev.event, ()):
                try:
                    await handler(ev.payload)
                except Exception:
                    self.log.exception("handler for event %s failed", ev.event)


class Plugin:
    """A clawgate plugin: declare handlers, then ``await plugin.run()``.

    Example::

        plugin = Plugin("dir-integrations", version="1.0.0", capabilities=["integrations"])

        @plugin.handler("command.execute")
        async def execute(params: dict) -> dict:
            return {"result": ...}

        await plugin.run()
    """

    def __init__(
        self,
        name: str,
        *,
        version: str,
        capabilities: Iterable[str] = (),
        runtime: str | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        rand: Callable[[float, float], float] = random.uniform,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        opener: Opener = _open_unix,
    ) -> None:
        """Create a plugin.

        Args:
            name: Plugin name, ``^[a-z0-9][a-z0-9._-]{0,63}$``.
            version: The plugin's own version string.
            capabilities: Capabilities to declare (0 to 64, unique).
            runtime: Optional runtime description sent with ``register``.
            backoff_initial: First reconnect delay ceiling, seconds.
            backoff_max: Largest reconnect delay ceiling, seconds.
            rand: Jitter source ``(low, high) -> float``.
            now: Clock used to answer ``ping``.
            opener: Opens the socket at a path; swapped in tests.

        Raises:
            ValueError: If the name, version or capabilities break the ``register`` rules
                (spec §2.3), which the daemon would refuse.
        """
        caps = list(capabilities)
        _check_registration(name, version, caps)
        self.name = name
        self.version = version
        self.capabilities = tuple(caps)
        self.runtime = runtime or f"python/{sys.version_info.major}.{sys.version_info.minor}"
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._rand = rand
        self._now = now
        self._opener = opener
        self._handlers: dict[str, RequestHandler] = {"ping": self._ping}
        self._event_handlers: dict[str, list[EventHandler]] = {}
        self._state = PluginState.IDLE
        self._conn: _PluginConnection | None = None
        self._live: _PluginConnection | None = None
        self._registration: dict[str, Any] | None = None
        self._running = False
        self._stop = asyncio.Event()
        self._registered = asyncio.Event()
        self._done = asyncio.Event()

    @property
    def state(self) -> PluginState:
        """Return the current life-cycle state."""
        return self._state

    @property
    def registration(self) -> dict[str, Any] | None:
        """Return the daemon's ``register`` result for the live connection, if any."""
        return self._registration

    def handler(self, method: str) -> Callable[[_H], _H]:
        """Return a decorator that binds an async handler to a daemon-to-plugin ``method``.

        The handler gets the request params and returns the result payload (an object; None
        means ``{}``). Raise ``PluginError`` to answer with a chosen code.
        """

        def bind(fn: _H) -> _H:
            if method in self._handlers and method != "ping":
                raise ValueError(f"a handler for {method!r} is already registered")
            self._handlers[method] = fn
            return fn

        return bind

    def on_event(self, event: str) -> Callable[[_E], _E]:
        """Return a decorator that subscribes an async handler to a daemon ``event``."""

        def bind(fn: _E) -> _E:
            self._event_handlers.setdefault(event, []).append(fn)
            return fn

        return bind

    async def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send a request to the daemon over the registered connection.

        Args:
            method: E.g. ``status``, ``integration.list``, ``ping``.
            params: Request params (``{}`` when None).
            timeout: Seconds to wait; defaults per method (spec §2.8).

        Returns:
            The response payload.

        Raises:
            PluginError: The daemon's error, or ``TIMEOUT`` (retryable).
            NotConnectedError: If no registered connection exists or it drops meanwhile.
        """
        conn = self._live
        if conn is None:
            raise NotConnectedError()
        if timeout is None:
            timeout = DEFAULT_TIMEOUTS_S.get(method, DEFAULT_REQUEST_TIMEOUT_S)
        return await conn.request(method, dict(params or {}), timeout)

    async def report(
        self,
        integration_id: str,
        status: str,
        *,
        error: Mapping[str, Any] | None = None,
        health: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Announce an integration status the plugin observed (``integration.report``).

        Args:
            integration_id: The integration.
            status: ``active``, ``inactive`` or ``error``.
            error: Optional ``{code, message}`` when the status is ``error``.
            health: Optional ``{healthy, detail?}``.
            timeout: Seconds to wait.

        Returns:
            The daemon's payload, ``{accepted: true}``.

        Raises:
            ValueError: If ``status`` is not one of the three.
            PluginError: E.g. ``NOT_FOUND`` for an integration this plugin does not own.
        """
        if status not in ("active", "inactive", "error"):
            raise ValueError(f"status must be active, inactive or error: {status!r}")
        params: dict[str, Any] = {"integrationId": integration_id, "status": status}
        if error is not None:
            params["error"] = dict(error)
        if health is not None:
            params["health"] = dict(health)
        return await self.call("integration.report", params, timeout=timeout)

    async def wait_registered(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait until a connection is registered and return the ``register`` result.

        Raises:
            TimeoutError: If ``timeout`` seconds pass first.
        """
        async with asyncio.timeout(timeout):
            while True:
                await self._registered.wait()
                if self._registration is not None:
                    return self._registration

    async def run(self, socket_path: str | os.PathLike[str] | None = None) -> None:
        """Connect, register and serve until ``stop()``; reconnect with full-jitter backoff.

        A daemon shutdown or restart is just a disconnect: the plugin reconnects and
        registers again.

        Args:
            socket_path: The daemon socket; ``default_socket_path()`` when None.

        Raises:
            PluginError: If the daemon refuses registration for a reason a retry cannot fix
                (``UNSUPPORTED_PROTOCOL``, ``INVALID_PARAMS``).
            RuntimeError: If the plugin is already running.
        """
        if self._running:
            raise RuntimeError("plugin is already running")
        path = os.fspath(socket_path) if socket_path is not None else str(default_socket_path())
        self._running = True
        # Cleared, not replaced: a caller may already wait on them (wait_registered).
        self._stop.clear()
        self._registered.clear()
        self._done.clear()
        backoff = Backoff(self._backoff_initial, self._backoff_max, rand=self._rand)
        log = _Adapter(_log, {"plugin": self.name, "conn": "-"})
        try:
            while not self._stop.is_set():
                self._state = PluginState.CONNECTING
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        reader, writer = await self._opener(path)
                except (OSError, TimeoutError) as exc:
                    log.info("cannot connect to %s: %s", path, type(exc).__name__)
                else:
                    outcome = await self._session(reader, writer)
                    if outcome.fatal is not None:
                        raise outcome.fatal
                    if outcome.registered:
                        backoff.reset()
                if self._stop.is_set():
                    break
                self._state = PluginState.BACKOFF
                delay = backoff.next_delay()
                log.debug("reconnecting in %.2f s", delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stop.wait()
        finally:
            self._state = PluginState.STOPPED
            self._running = False
            self._done.set()

    async def stop(self) -> None:
        """Close the connection, cancel every handler and wait for ``run`` to return."""
        self._stop.set()
        if self._conn is not None:
            self._conn.abort()
        if self._running:
            await self._done.wait()

    async def _session(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> _Outcome:
        """Register on a fresh connection and serve it until it ends."""
        conn = _PluginConnection(self, reader, writer)
        self._conn = conn
        outcome = _Outcome(registered=False)
        try:
            async with asyncio.TaskGroup() as tg:
                conn.start(tg)
                try:
                    outcome = await self._register(conn)
                    if outcome.registered:
                        await conn.closed.wait()
                finally:
                    self._live = None
                    self._registration = None
                    self._registered.clear()
                    conn.abort()
        finally:
            self._conn = None
            await conn.close_transport()
        return outcome

    async def _register(self, conn: _PluginConnection) -> _Outcome:
        params = register_params(
            name=self.name,
            version=self.version,
            capabilities=list(self.capabilities),
            pid=os.getpid(),
            runtime=self.runtime,
        )
        try:
            result = await conn.request("register", params, DEFAULT_TIMEOUTS_S["register"])
        except NotConnectedError:
            return _Outcome(registered=False)
        except PluginError as exc:
            if exc.code in FATAL_REGISTER_CODES:
                conn.log.error("registration refused: %s %s", exc.code, exc.message)
                return _Outcome(registered=False, fatal=exc)
            conn.log.warning("registration failed: %s %s", exc.code, exc.message)
            return _Outcome(registered=False)
        conn.log = _Adapter(_log, {"plugin": self.name, "conn": result.get("connectionId", "-")})
        conn.log.info("registered (daemon %s)", result.get("daemonVersion"))
        self._registration = result
        self._live = conn
        self._state = PluginState.REGISTERED
        self._registered.set()
        return _Outcome(registered=True)

    async def _answer(self, req: Request, log: logging.LoggerAdapter) -> bytes:  # type: ignore[type-arg]
        """Run the handler for ``req`` and return the encoded response frame."""
        handler = self._handlers.get(req.method)
        if handler is None:
            error = IpcError(METHOD_NOT_FOUND, f"unknown method {req.method!r}")
            return encode_error(req.id, error)
        try:
            result = await handler(req.params)
            if result is None:
                result = {}
            if not isinstance(result, Mapping):
                raise TypeError("handler returned a non-object")
            # INTERNAL above 1 MiB: the daemon would close on the frame (§2.1).
            return encode_response(req.id, dict(result))
        except IpcError as exc:
            return encode_error(req.id, exc)
        except Exception as exc:
            # Never send str(exc): it may carry secrets or internals.
            log.exception("handler for %s failed", req.method)
            error = IpcError(INTERNAL, f"{req.method} failed ({type(exc).__name__})")
            return encode_error(req.id, error)

    async def _ping(self, params: dict[str, Any]) -> dict[str, Any]:
        now = self._now().astimezone(UTC)
        return {"now": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"}
