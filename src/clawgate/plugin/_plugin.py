"""The plugin client: declare handlers, then connect, register, serve and reconnect.

Invariants:
- One ``Plugin`` owns at most one ``PluginConnection`` at a time (``_conn``); it is ``_live``
  (``call`` may use it) only between a successful ``register`` and the end of the
  connection, and ``registration`` is set exactly then.
- ``run`` reconnects with full-jitter backoff until ``stop``; the backoff starts over only
  after a connection that registered, so a daemon refusing in a loop is not hammered.
- ``stop`` ends the current connection, which cancels every task it runs, and waits for
  ``run`` to return, so nothing outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import random
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from ..client import Backoff
from ..protocol.ipc.timeouts import DEFAULT_REQUEST_TIMEOUT_S, DEFAULT_TIMEOUTS_S
from ._connection import Opener, PluginConnection, PluginLogger, default_socket_path, open_unix
from ._errors import NotConnectedError
from ._handlers import EventHandler, Handlers, RequestHandler
from ._registration import Outcome, check_registration, register

__all__ = ["Plugin", "PluginState"]

CONNECT_TIMEOUT: Final = 5.0

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
        opener: Opener = open_unix,
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
        check_registration(name, version, caps)
        self.name = name
        self.version = version
        self.capabilities = tuple(caps)
        self.runtime = runtime or f"python/{sys.version_info.major}.{sys.version_info.minor}"
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._rand = rand
        self._opener = opener
        self._handlers = Handlers(now)
        self._state = PluginState.IDLE
        self._conn: PluginConnection | None = None
        self._live: PluginConnection | None = None
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
            self._handlers.add_request(method, fn)
            return fn

        return bind

    def on_event(self, event: str) -> Callable[[_E], _E]:
        """Return a decorator that subscribes an async handler to a daemon ``event``."""

        def bind(fn: _E) -> _E:
            self._handlers.add_event(event, fn)
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
        log = PluginLogger(_log, self.name)
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

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Outcome:
        """Register on a fresh connection and serve it until it ends."""
        conn = PluginConnection(reader, writer, self._handlers, self.name)
        self._conn = conn
        outcome = Outcome()
        try:
            async with asyncio.TaskGroup() as tg:
                conn.start(tg)
                try:
                    outcome = await register(
                        conn,
                        name=self.name,
                        version=self.version,
                        capabilities=list(self.capabilities),
                        runtime=self.runtime,
                    )
                    if outcome.result is not None:
                        self._registration = outcome.result
                        self._live = conn
                        self._state = PluginState.REGISTERED
                        self._registered.set()
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
