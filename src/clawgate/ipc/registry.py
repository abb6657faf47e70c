"""Live plugin registrations and routing by capability (spec §2.3, §2.8, §2.9, §2.10).

Invariants:
- A session is in the registry exactly while it is live: it is added when its `register`
  succeeds and removed, before `on_disconnect` runs, when its connection is lost or replaced.
- On replacement `on_disconnect(old)` runs before `on_register(new)`, so the daemon never
  sees two live sessions with one name.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any, Protocol

from ..protocol.ipc.frames import PLUGIN_DISCONNECTED, IpcError
from ..protocol.ipc.timeouts import DEFAULT_REQUEST_TIMEOUT_S, DEFAULT_TIMEOUTS_S

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT_S",
    "DEFAULT_TIMEOUTS_S",
    "PluginLink",
    "PluginRegistry",
    "PluginSession",
    "SessionCallback",
    "timeout_for",
]

logger = logging.getLogger(__name__)

SessionCallback = Callable[["PluginSession"], None]


def timeout_for(
    method: str,
    overrides: dict[str, float] | None = None,
    default_s: float = DEFAULT_REQUEST_TIMEOUT_S,
) -> float:
    """Return the §2.8 timeout for `method`, honouring `[ipc.method_timeouts_s]` overrides."""
    if overrides and method in overrides and method != "command.execute":
        return overrides[method]
    return DEFAULT_TIMEOUTS_S.get(method, default_s)


class PluginLink(Protocol):
    """What a session needs from the connection that carries it."""

    async def request(
        self, method: str, params: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]:
        """Send a request and wait for its payload."""
        ...

    def start_request(
        self, method: str, params: dict[str, Any], timeout_s: float
    ) -> asyncio.Future[dict[str, Any]]:
        """Queue a request now and return the future of its payload."""
        ...

    def send_event(self, name: str, payload: dict[str, Any]) -> None:
        """Queue an event."""
        ...


class PluginSession:
    """One registered plugin on one connection."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        capabilities: tuple[str, ...],
        protocol_version: int,
        connection_id: str,
        connected_at: float,
        link: PluginLink,
        pid: int | None = None,
        runtime: Any = None,
        default_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        self.name = name
        self.version = version
        self.capabilities = capabilities
        self.protocol_version = protocol_version
        self.connection_id = connection_id
        self.connected_at = connected_at  # wall-clock seconds since the epoch
        self.pid = pid
        self.runtime = runtime
        self.live = True
        self._link = link
        self._default_timeout_s = default_timeout_s
        self._order = 0  # registration order, set by the registry

    def __repr__(self) -> str:
        return f"PluginSession({self.name!r}, conn={self.connection_id!r}, live={self.live})"

    async def request(
        self, method: str, params: dict[str, Any] | None = None, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send a daemon-to-plugin request and return its result payload.

        Args:
            method: The method name (§2.6).
            params: The params object; None means `{}`.
            timeout_s: Seconds to wait; None uses `DEFAULT_TIMEOUTS_S` or the default.

        Raises:
            IpcError: `TIMEOUT` or `PLUGIN_DISCONNECTED` (both retryable), or the error the
                plugin answered with.
        """
        if not self.live:
            raise IpcError(PLUGIN_DISCONNECTED, f"plugin {self.name} is not connected")
        if timeout_s is None:
            timeout_s = DEFAULT_TIMEOUTS_S.get(method, self._default_timeout_s)
        return await self._link.request(method, params or {}, timeout_s)

    def start_request(
        self, method: str, params: dict[str, Any], timeout_s: float
    ) -> asyncio.Future[dict[str, Any]]:
        """Queue a daemon-to-plugin request now; return the future of its result payload.

        For callers that act on the reply in a callback (the command router). The future
        fails like `request` raises; a session that is no longer live fails it at once.
        """
        if not self.live:
            failed: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            failed.set_exception(
                IpcError(PLUGIN_DISCONNECTED, f"plugin {self.name} is not connected")
            )
            return failed
        return self._link.start_request(method, params, timeout_s)

    def send_event(self, name: str, payload: dict[str, Any]) -> None:
        """Queue an event for the plugin; dropped silently once it is disconnected."""
        if self.live:
            self._link.send_event(name, payload)


class PluginRegistry:
    """The live plugin sessions, by name and by capability."""

    def __init__(
        self,
        *,
        on_register: SessionCallback | None = None,
        on_disconnect: SessionCallback | None = None,
    ) -> None:
        self.on_register = on_register
        self.on_disconnect = on_disconnect
        self._by_name: dict[str, PluginSession] = {}
        self._counter = itertools.count(1)

    def sessions(self) -> list[PluginSession]:
        """Return the live sessions, oldest registration first."""
        return sorted(self._by_name.values(), key=lambda session: session._order)

    def by_name(self, name: str) -> PluginSession | None:
        """Return the live session named `name`, if any."""
        return self._by_name.get(name)

    def for_capability(self, capability: str) -> PluginSession | None:
        """Return the most recently registered live session that declared `capability`."""
        best: PluginSession | None = None
        for session in self._by_name.values():
            if capability not in session.capabilities:
                continue
            if best is None or session._order > best._order:
                best = session
        return best

    def add(self, session: PluginSession) -> PluginSession | None:
        """Make `session` live and return the same-named session it replaces, if any."""
        session._order = next(self._counter)
        previous = self._by_name.get(session.name)
        self._by_name[session.name] = session
        return previous

    def remove(self, session: PluginSession) -> None:
        """Mark `session` disconnected, drop it if it is still current and run `on_disconnect`."""
        if not session.live:
            return
        session.live = False
        if self._by_name.get(session.name) is session:
            del self._by_name[session.name]
        self._notify(self.on_disconnect, session)

    def announce(self, session: PluginSession) -> None:
        """Run `on_register` for a session whose `register` response is already queued."""
        self._notify(self.on_register, session)

    def _notify(self, callback: SessionCallback | None, session: PluginSession) -> None:
        if callback is None:
            return
        try:
            callback(session)
        except Exception:
            # A broken hook must not take the IPC server down with it.
            logger.exception("plugin callback failed for %s", session.name)
