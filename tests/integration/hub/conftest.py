"""Fixtures: a real hub on an ephemeral loopback port, an admin HTTP client, daemon keys."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clawgate.hub import HubServer, HubSettings
from tests.fakes.hub_daemon import SimDaemon

#: Short heartbeats so dead-link tests finish quickly.
TEST_HEARTBEAT_MS = 200


@dataclass
class RunningHub:
    """A started hub and an HTTP session for its operator API."""

    server: HubServer
    http: aiohttp.ClientSession
    home: Path

    @property
    def admin_token(self) -> str:
        return self.server.settings.admin_token

    @property
    def link_url(self) -> str:
        return self.server.link_url

    async def call(
        self, method: str, path: str, body: Any = None, *, token: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        async with self.http.request(
            method, self.server.url + path, json=body, headers=headers
        ) as response:
            return response.status, await response.json()

    async def new_key(self, label: str = "test") -> str:
        status, body = await self.call("POST", "/v1/keys", {"label": label})
        assert status == 201, body
        return str(body["key"])

    async def daemon(self, **options: Any) -> SimDaemon:
        daemon = SimDaemon(
            self.link_url, options.pop("key", None) or await self.new_key(), **options
        )
        ack = await daemon.connect()
        assert ack is not None, f"hub refused the daemon: {daemon.close_code}"
        return daemon


HubFactory = Callable[..., Awaitable[RunningHub]]


def hub_settings(home: Path, **overrides: Any) -> HubSettings:
    settings = HubSettings(
        config_path=home / "hub.toml",
        db_path=home / "hub.db",
        admin_token=secrets.token_urlsafe(24),
        port=0,
        heartbeat_interval_ms=TEST_HEARTBEAT_MS,
        sweep_interval_s=0.5,
    )
    return replace(settings, **overrides)


@pytest.fixture
async def hub_factory(tmp_path: Path) -> AsyncIterator[HubFactory]:
    """Start hubs (stopped at the end); daemons made by ``RunningHub.daemon`` close first."""
    started: list[RunningHub] = []
    daemons: list[SimDaemon] = []

    async def start(home: Path | None = None, **overrides: Any) -> RunningHub:
        home = home or tmp_path / f"hub{len(started)}"
        home.mkdir(mode=0o700, exist_ok=True)
        server = HubServer(hub_settings(home, **overrides))
        await server.start()
        running = RunningHub(server, aiohttp.ClientSession(), home)
        original = running.daemon

        async def tracked(**options: Any) -> SimDaemon:
            daemon = await original(**options)
            daemons.append(daemon)
            return daemon

        running.daemon = tracked  # type: ignore[method-assign]
        started.append(running)
        return running

    yield start
    for daemon in daemons:
        await daemon.close()
    for running in started:
        await running.server.stop()
        await running.http.close()


@pytest.fixture
async def hub(hub_factory: HubFactory) -> RunningHub:
    """A hub with 200 ms heartbeats and secrets in memory."""
    return await hub_factory()


MANIFEST: dict[str, Any] = {
    "id": "github",
    "version": "1.4.0",
    "name": "GitHub",
    "config_schema": {
        "type": "object",
        "required": ["org", "token"],
        "properties": {
            "org": {"type": "string"},
            "repos": {"type": "integer", "minimum": 1},
            "token": {"type": "string", "x-secret": True},
        },
    },
    "commands": [{"name": "github.sync", "timeout_ms": 60000}],
}


def github_entry(secret: str = "ghp_supersecretvalue123", **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "github",
        "version": "1.4.0",
        "enabled": True,
        "manifest": MANIFEST,
        "config": {"org": "acme"},
        "secrets": {"token": secret},
    }
    entry.update(overrides)
    return entry
