"""Shared fixtures: a real gateway on an ephemeral loopback port with a temporary home."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import pytest

from clawgate.gateway.server import GatewayServer
from clawgate.gateway.settings import GatewaySettings
from clawgate.protocol.auth import AuthMode, SharedSecretAuth
from clawgate.protocol.limits import Limits

# Tests that share one session-scoped real server run on one pytest-xdist worker, so each
# server starts once per run rather than once per worker (`make test` runs `-n auto`).
SERVER_GROUPS = {
    "synapse": "synapse",
    "ircd": "ngircd",
    "password_ircd": "ngircd",
    "pg_server": "postgres-nats",
    "nats_server": "postgres-nats",
}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put every test that uses a shared real server in that server's xdist group."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        group = next((SERVER_GROUPS[name] for name in names if name in SERVER_GROUPS), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


#: Test files that load neonize, and with it a Go runtime (its threads, its signal handlers)
#: into the process. They run in a pytest process of their own
#: (`tests/test_go_runtime_suite.py`), so that runtime never shares a worker with the rest.
GO_RUNTIME_TESTS: Final = (
    "tests/integration/channels/test_whatsapp_web.py",
    "tests/unit/test_whatsapp_translate.py",
    "tests/browser/test_webchat_channels.py",
)
GO_RUNTIME_ENV: Final = "CLAWGATE_GO_RUNTIME_TESTS"
_ROOT: Final = Path(__file__).resolve().parent.parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave the Go-runtime tests to their own process, unless asked for by name."""
    if os.environ.get(GO_RUNTIME_ENV) or collection_path.suffix != ".py":
        return None
    relative = collection_path.resolve().relative_to(_ROOT).as_posix()
    if relative not in GO_RUNTIME_TESTS:
        return None
    named = {
        (Path(config.invocation_params.dir) / arg.split("::")[0]).resolve()
        for arg in config.invocation_params.args
    }
    return None if collection_path.resolve() in named else True


# Short enough that tests see ticks quickly, long enough not to flood slow machines.
TEST_TICK_MS = 200


@dataclass
class RunningGateway:
    """A started gateway and how to reach it."""

    server: GatewayServer
    token: str
    home: Path

    @property
    def url(self) -> str:
        """The WebSocket URL."""
        return self.server.url

    @property
    def http_url(self) -> str:
        """The HTTP base URL, without a trailing slash."""
        return self.server.url.replace("ws://", "http://").rstrip("/")

    async def restart(self) -> None:
        """Stop the server and start a new one on the same port and home."""
        port = self.server.port
        await self.server.stop(restarting=True, restart_expected_ms=1000)
        settings = replace(self.server.settings, port=port)
        self.server = GatewayServer(settings, clock=self.server.now_ms)
        await self.server.start()


GatewayFactory = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def gateway_factory(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """Start gateways with custom limits or auth; all are stopped at the end of the test."""
    started: list[RunningGateway] = []

    async def start(
        *,
        limits: Limits | None = None,
        auth: SharedSecretAuth | None = None,
        clock: Callable[[], int] | None = None,
        **overrides: Any,
    ) -> RunningGateway:
        token = secrets.token_urlsafe(32)
        home = tmp_path / f"home{len(started)}"
        home.mkdir(mode=0o700)
        (home / "logs").mkdir(mode=0o700)
        settings = GatewaySettings(
            home=home,
            auth=auth or SharedSecretAuth(AuthMode.TOKEN, token),
            port=0,
            limits=limits or Limits(tick_interval_ms=TEST_TICK_MS),
            log_file=home / "logs" / "gateway.log",
            state_db=home / "state.db",
            **overrides,
        )
        server = GatewayServer(settings) if clock is None else GatewayServer(settings, clock=clock)
        await server.start()
        running = RunningGateway(server, token, home)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.server.stop()


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> RunningGateway:
    """A gateway with token auth and a 200 ms tick."""
    return await gateway_factory()
