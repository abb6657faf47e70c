"""Real PostgreSQL and nats-server for the scale-out tests, started once per session.

Skipped with the reason printed when a server is not installed (``make test`` installs both,
so in CI a skip means the install failed); never silently.
"""

from __future__ import annotations

import itertools
import os
import secrets
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clawgate.hub import HubServer
from tests.fakes.balancer import Balancer
from tests.fakes.hub_daemon import SimDaemon
from tests.integration.hub.conftest import RunningHub, hub_settings
from tests.servers import NatsServer, PostgresServer, missing_servers

_databases = itertools.count()


def _require(name: str) -> None:
    missing = [m for m in missing_servers() if m.startswith(name)]
    if missing:
        reason = f"{missing[0]} is not installed here; `make test` installs it (apt-get)"
        warnings.warn(reason, stacklevel=2)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the session, on a free loopback port."""
    _require("postgresql")
    server = PostgresServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """One nats-server for the session, on a free loopback port."""
    _require("nats-server")
    server = NatsServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A fresh database for this test."""
    if pg_server.proc is None or pg_server.proc.poll() is not None:
        pg_server.start()  # a test restarted or killed it
    return pg_server.create_database(f"hub_{os.getpid()}_{next(_databases)}")


@dataclass
class Cluster:
    """Hub instances sharing one database and bus, behind a round-robin balancer."""

    hubs: list[RunningHub]
    balancer: Balancer
    admin_token: str
    secrets_key: bytes
    home: Path
    database_url: str
    bus_url: str

    @property
    def link_url(self) -> str:
        return f"ws://127.0.0.1:{self.balancer.port}/v1/daemon"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.balancer.port}"


ClusterFactory = Callable[..., Awaitable[Cluster]]


@pytest.fixture
async def cluster_factory(
    tmp_path: Path, pg_url: str, nats_server: NatsServer
) -> AsyncIterator[ClusterFactory]:
    """Start ``n`` instances on PostgreSQL + NATS behind a balancer; all stop at the end."""
    started: list[RunningHub] = []
    balancers: list[Balancer] = []
    daemons: list[SimDaemon] = []

    async def start(n: int, **overrides: Any) -> Cluster:
        token = secrets.token_urlsafe(24)
        key = os.urandom(32)
        hubs = []
        for index in range(n):
            home = tmp_path / f"i{len(started)}"
            home.mkdir(mode=0o700)
            settings = replace(
                hub_settings(home, admin_token=token, secrets_key=key),
                database_url=pg_url,
                bus_url=nats_server.url,
                **overrides,
            )
            server = HubServer(settings)
            await server.start()
            running = RunningHub(server, aiohttp.ClientSession(), home)
            original = running.daemon

            async def tracked(_original: Any = original, **options: Any) -> SimDaemon:
                daemon = await _original(**options)
                daemons.append(daemon)
                return daemon

            running.daemon = tracked  # type: ignore[method-assign]
            started.append(running)
            hubs.append(running)
            del index
        balancer = Balancer([h.server.port for h in hubs])
        await balancer.start()
        balancers.append(balancer)
        return Cluster(hubs, balancer, token, key, tmp_path, pg_url, nats_server.url)

    yield start
    for daemon in daemons:
        await daemon.close()
    for balancer in balancers:
        await balancer.stop()
    for running in started:
        await running.server.stop()
        await running.http.close()
