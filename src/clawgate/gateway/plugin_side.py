"""The plugin side of a gateway, wired: IPC socket, command queue, router, reconciler, link.

Nothing here decides anything: each piece is built with the collaborators it uses, and the
hooks between them (a plugin registers or leaves, an integration goes active, the link
changes state) are connected in one place, so the path hub -> daemon -> plugin -> ack reads
top to bottom: `CloudService` -> `CommandRouter` -> `CommandService` -> plugin.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import __version__
from ..cloud.hub_clock import HubClock
from ..cloud.integration_routes import IntegrationCommands
from ..cloud.plugin_methods import integration_handlers
from ..cloud.reconciler import Reconciler
from ..cloud.settings import LinkSettings
from ..commands import CommandBook, CommandService
from ..ipc import Handler, IpcServer, PluginRegistry, PluginSession
from ..ipc.plugin_list import describe_plugins
from ..ipc.router import CommandRouter
from ..store import StateStore
from .settings import PluginSettings

__all__ = ["PluginSide"]

logger = logging.getLogger(__name__)

StatusListener = Callable[[dict[str, Any]], None]


def _no_cloud() -> dict[str, Any]:
    return {"connected": False, "state": "disabled", "since": None}


class PluginSide:
    """Own everything that serves local plugins and the hub's commands."""

    def __init__(
        self,
        *,
        store: StateStore,
        socket_path: Path,
        settings: PluginSettings,
        clock: Callable[[], int],
        uptime_ms: Callable[[], int],
        link: LinkSettings | None = None,
        on_cloud_status: StatusListener | None = None,
        handlers: Mapping[str, Handler] | None = None,
    ) -> None:
        """Wire the plugin side; `handlers` are other services' plugin-to-daemon methods."""
        self._store = store
        self._uptime_ms = uptime_ms
        self.registry = registry = PluginRegistry(
            on_register=self._registered, on_disconnect=self._left
        )
        self.hub_clock = HubClock(store, clock)
        self.reconciler = Reconciler(
            store,
            registry,
            clock_ms=clock,
            drift_interval_s=settings.drift_interval_s,
            method_timeouts_s=dict(settings.method_timeouts_s),
            on_active=lambda item_id: self.router.pump_later(f"integration:{item_id}"),
        )
        book = CommandBook(
            ttl_ms=settings.queue_ttl_s * 1000,
            max_total=settings.queue_max_total,
            max_per_target=settings.queue_max_per_target,
        )
        # Hub time (local time + the offset the control link measured, spec §3.4) decides
        # every command deadline.
        self.commands = CommandService(
            store, book, clock=self.hub_clock.now_ms, extra_secrets=self.reconciler.secret_values
        )
        self.router = CommandRouter(
            self.commands,
            registry,
            IntegrationCommands(self.reconciler),
            clock=clock,
            hub_clock=self.hub_clock.now_ms,
        )
        self.cloud = None
        if link is not None:
            from ..cloud.service import CloudService  # the link's code loads only when used

            self.cloud = CloudService(
                link,
                daemon_id=store.daemon_id,
                router=self.router,
                commands=self.commands,
                reconciler=self.reconciler,
                plugins=registry,
                hub_clock=self.hub_clock,
                clock=clock,
                on_status=on_cloud_status or (lambda status: None),
            )
        self.ipc = IpcServer(
            socket_path,
            daemon_id=store.daemon_id,
            daemon_version=__version__,
            registry=registry,
            request_timeout_s=settings.request_timeout_s,
            cloud_connected=lambda: bool(self.cloud_status()["connected"]),
            handlers={
                "status": self._plugin_status,
                **integration_handlers(self.reconciler),
                **(handlers or {}),
            },
        )

    @property
    def hub_managed(self) -> bool:
        """Whether a control link owns the desired state (spec §3)."""
        return self.cloud is not None

    def cloud_status(self) -> dict[str, Any]:
        """Return the control link's state as plugins see it (`cloud.status`, spec §2.7)."""
        return self.cloud.status() if self.cloud is not None else _no_cloud()

    async def start(self, spawn: Callable[..., asyncio.Task[Any]] = asyncio.create_task) -> None:
        """Restore hub time, load the queue, start reconciling, listen, then link.

        Args:
            spawn: Starts each part's background loop; the gateway passes its task group's.
        """
        # Hub time decides §4.5's expiries: restore the last measured offset first (§3.4).
        await self.hub_clock.load()
        await self.router.start(spawn)
        await self.reconciler.start(spawn)
        await self.ipc.start(spawn)
        if self.cloud is not None:
            await self.cloud.start(spawn)

    async def stop(self) -> None:
        """Unlink, stop reconciling, tell plugins we stop, end running calls."""
        if self.cloud is not None:
            await self.cloud.stop()
        await self.reconciler.stop()
        await self.ipc.stop()
        await self.router.stop()

    def _registered(self, session: PluginSession) -> None:
        logger.info("plugin %s registered (%s)", session.name, ", ".join(session.capabilities))
        session.send_event("cloud.status", self.cloud_status())
        self.router.plugin_registered(session)
        self.reconciler.plugin_registered(session)

    def _left(self, session: PluginSession) -> None:
        logger.info("plugin %s disconnected", session.name)
        self.router.plugin_left(session)
        self.reconciler.plugin_disconnected(session)

    async def _plugin_status(
        self, session: PluginSession, params: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "daemonId": self._store.daemon_id,
            "daemonVersion": __version__,
            "uptimeMs": self._uptime_ms(),
            "cloud": self.cloud_status(),
            "plugins": describe_plugins(self.registry),
            "queue": {"depth": self.commands.depth(), "byTarget": self.commands.by_target()},
            "reconcile": self.reconciler.status(),
        }
