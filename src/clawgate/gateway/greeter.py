"""Build `hello-ok` for a new connection from the gateway's current state (spec §3.4)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from .. import __version__
from ..protocol.hello import HelloAuth, hello_ok, policy, snapshot
from ..protocol.limits import Limits
from ..protocol.scopes import ADMIN, Role, scope_satisfied
from .access import GatewayAccess
from .health import HealthMonitor
from .peer import Peer
from .presence import PresenceService
from .registry import MethodRegistry
from .services import GatewayInfo

__all__ = ["CanvasUrls", "Greeter"]


class CanvasUrls(Protocol):
    """The canvas host as the greeter sees it (`canvas.server.CanvasHost` is one)."""

    def host_url(self, reached_host: str | None = None) -> str:
        """Return the canvas base URL for a client that reached the gateway at `reached_host`."""


class Greeter:
    """Answer a successful `connect` with the features, snapshot and policy of this gateway."""

    def __init__(
        self,
        *,
        methods: MethodRegistry,
        info: GatewayInfo,
        limits: Limits,
        access: GatewayAccess,
        presence: PresenceService,
        health: HealthMonitor,
        state_version: Callable[[], dict[str, int]],
        config_path: Path | None,
        canvas: CanvasUrls | None = None,
    ) -> None:
        self._methods = methods.method_names()
        self._events = methods.event_names()
        self._info = info
        self._policy = policy(limits)
        self._access = access
        self._presence = presence
        self._health = health
        self._state_version = state_version
        self._config_path = config_path
        self._canvas = canvas

    def hello(self, connection: Peer, auth: HelloAuth) -> dict[str, Any]:
        """Return `hello-ok` for `connection`, its snapshot taken now."""
        admin = connection.role is Role.OPERATOR and scope_satisfied(connection.scopes, ADMIN)
        config_path = self._config_path if admin else None
        shot = snapshot(
            presence=self._presence.entries(),
            health=self._health.summary,
            state_version=self._state_version(),
            uptime_ms=self._info.uptime_ms(),
            auth_mode=self._access.auth.mode.value,
            config_path=str(config_path) if config_path is not None else None,
            state_dir=str(self._info.home) if admin else None,
        )
        # Nodes are told where the canvas is, to open the pages agents write (spec §3.4).
        canvas_url = None
        if self._canvas is not None and connection.role is Role.NODE:
            canvas_url = self._canvas.host_url(connection.reached_host)
        return hello_ok(
            protocol=connection.protocol,
            version=__version__,
            conn_id=connection.conn_id,
            boot_id=self._info.boot_id,
            methods=self._methods,
            events=self._events,
            snapshot=shot,
            policy=self._policy,
            auth=auth,
            canvas_host_url=canvas_url,
        )
