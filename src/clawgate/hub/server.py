"""The hub service: composes store, bus, vault and routes; start and stop in order.

``settings.database_url`` picks the store (PostgreSQL, else SQLite at ``db_path``) and
``settings.bus_url`` the bus (NATS, else in process); their libraries load only when picked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from typing import Final

from aiohttp import web

from ..protocol.control_link import Clock
from ..protocol.run_identity import IDENTITY_CHALLENGE_HEADER, IDENTITY_PROOF_HEADER, identity_proof
from .api import add_routes
from .bus import HubBus, LocalBus
from .core import HubCore
from .repo_store import SqliteHubStore, postgres_store
from .settings import HubSettings, HubSettingsError
from .store import HubStore
from .vault import make_vault

__all__ = ["HubServer"]

logger = logging.getLogger(__name__)

#: How long stop() lets links finish their close handshake.
CLOSE_GRACE_S: Final = 3.0


class HubServer:
    """One hub instance: HTTP + WebSocket on one port, state in the store."""

    def __init__(
        self,
        settings: HubSettings,
        *,
        store: HubStore | None = None,
        bus: HubBus | None = None,
        clock: Clock = time.time,
    ) -> None:
        """Prepare the hub; nothing is opened or bound until ``start``.

        Raises:
            HubSettingsError: a PostgreSQL hub without a secrets key (another instance could
                not read the secrets this one keeps).
        """
        if settings.clustered and settings.secrets_key is None:
            raise HubSettingsError(
                "a hub on PostgreSQL needs a secrets key shared by every instance; set "
                "CLAWGATE_HUB_SECRETS_KEY (openssl rand -base64 32)"
            )
        if store is None:
            store = _store_for(settings)
        if bus is None:
            bus = _bus_for(settings)
        self.settings = settings
        self.core = HubCore(
            settings,
            store,
            bus,
            make_vault(settings.secrets_key, settings.previous_secrets_keys),
            clock=clock,
        )
        self._runner: web.AppRunner | None = None
        self._loops: list[asyncio.Task[None]] = []
        self.port = settings.port
        self.boot_id = str(uuid.uuid4())
        # Proves this start to the hub CLI through its 0600 state file (service/runstate.py).
        self.identity_key = secrets.token_hex(32)

    @property
    def url(self) -> str:
        """The HTTP base URL a local client dials, without a trailing slash."""
        return f"http://{self._local_host}:{self.port}"

    @property
    def link_url(self) -> str:
        """The control-link URL daemons put in ``cloud.url`` (this machine's, when bound wide)."""
        return f"ws://{self._local_host}:{self.port}/v1/daemon"

    @property
    def _local_host(self) -> str:
        host = self.settings.host
        if host == "0.0.0.0":
            return "127.0.0.1"
        if host == "::":
            return "[::1]"
        return f"[{host}]" if ":" in host else host

    async def start(self) -> None:
        """Open the store, start the bus, bind the port.

        Raises:
            HubLocked: another hub holds the database.
            HubStoreError: the database cannot be used.
            OSError: the port cannot be bound.
        """
        await self.core.store.open()
        try:
            await self.core.bus.start()
            await self.core.start()
            self._loops = [
                asyncio.create_task(self.core.run_sweeps(), name="hub-sweeps"),
                asyncio.create_task(self.core.run_ticks(), name="hub-ticks"),
            ]
            if not self.core.vault.durable:
                logger.warning(
                    "no secrets key configured: secret values are held in memory only and a "
                    "hub restart loses them; set CLAWGATE_HUB_SECRETS_KEY to keep them encrypted"
                )
            app = web.Application(client_max_size=self.settings.max_message_bytes)
            add_routes(app, self.core)
            app.on_response_prepare.append(self._prove_identity)
            self._runner = web.AppRunner(
                app, access_log=None, handle_signals=False, shutdown_timeout=1.0
            )
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
            await site.start()
        except BaseException:
            await self._cleanup()
            raise
        self.port = self._bound_port()
        logger.info(
            "hub ready on %s (instance %s, database %s, bus %s)",
            self.url,
            self.core.instance_id[:8],
            self.core.store.where,
            "NATS" if self.settings.bus_url else "in process",
        )

    async def stop(self) -> None:
        """Close every daemon link with 1012, stop serving, close the store; idempotent."""
        core = self.core
        if core.stopping:
            return
        core.stopping = True
        links = list(core.links)
        for link in links:
            link.restarting()
        if links:
            logger.info("closing %d daemon links with 1012", len(links))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_GRACE_S):
                    await core.links_drained.wait()
        await self._cleanup()
        logger.info("hub stopped")

    async def _prove_identity(self, request: web.Request, response: web.StreamResponse) -> None:
        """Answer a local client's challenge on `/readyz` (protocol/run_identity.py)."""
        challenge = request.headers.get(IDENTITY_CHALLENGE_HEADER)
        if request.path == "/readyz" and challenge:
            proof = identity_proof(self.identity_key, challenge)
            if proof is not None:
                response.headers[IDENTITY_PROOF_HEADER] = proof

    async def _cleanup(self) -> None:
        for loop in self._loops:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        self._loops = []
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.core.bus.stop()
        await self.core.store.close()

    def _bound_port(self) -> int:
        assert self._runner is not None
        for site in self._runner.sites:
            server = getattr(site, "_server", None)
            if server is not None and server.sockets:
                return int(server.sockets[0].getsockname()[1])
        return self.settings.port


def _store_for(settings: HubSettings) -> HubStore:
    if settings.database_url is not None:
        return postgres_store(settings.database_url)
    return SqliteHubStore(settings.db_path)


def _bus_for(settings: HubSettings) -> HubBus:
    if settings.bus_url is not None:
        from .nats_bus import NatsBus

        return NatsBus(settings.bus_url)
    return LocalBus()
