"""The hub service: composes store, bus, vault and routes; start and stop in order."""

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
from .settings import HubSettings
from .sqlite_store import SqliteHubStore
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
        """Prepare the hub; nothing is opened or bound until ``start``."""
        if store is None:
            store = SqliteHubStore(settings.db_path)
        self.settings = settings
        self.core = HubCore(
            settings,
            store,
            bus if bus is not None else LocalBus(),
            make_vault(settings.secrets_key),
            clock=clock,
        )
        self._runner: web.AppRunner | None = None
        self.port = settings.port
        self.boot_id = str(uuid.uuid4())
        # Proves this start to the hub CLI through its 0600 state file (service/runstate.py).
        self.identity_key = secrets.token_hex(32)

    @property
    def url(self) -> str:
        """The HTTP base URL, without a trailing slash."""
        return f"http://{self.settings.host}:{self.port}"

    @property
    def link_url(self) -> str:
        """The control-link URL daemons put in ``cloud.url``."""
        return f"ws://{self.settings.host}:{self.port}/v1/daemon"

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
        logger.info("hub ready on %s (database %s)", self.url, self.settings.db_path)

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
