"""Fixtures for integration tests: connected SDK clients that record every event."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clawgate.client import Event, EventStream, GatewayClient
from tests.conftest import GatewayFactory, RunningGateway

#: What the test peers used to send in ``connect.client``; tests override per call.
TEST_CLIENT: dict[str, Any] = {
    "client_id": "test",
    "client_version": "1.0",
    "platform": "linux",
    "client_mode": "test",
}


@dataclass
class Peer:
    """A connected ``GatewayClient`` and a stream subscribed before its handshake.

    The stream holds every event received since ``hello-ok`` (seq 1 onwards), so a test
    never misses an event that arrived before it started waiting.
    """

    client: GatewayClient
    events: EventStream

    @property
    def hello(self) -> dict[str, Any]:
        """Return the ``hello-ok`` payload."""
        assert self.client.hello is not None
        return self.client.hello

    async def next_event(self, name: str, timeout: float = 5.0) -> Event:
        """Return the next recorded event called ``name``, skipping others."""
        async with asyncio.timeout(timeout):
            async for event in self.events:
                if event.event == name:
                    return event
        raise AssertionError(f"closed ({self.client.close_code}) while waiting for {name}")

    async def closed(self, timeout: float = 5.0) -> int | None:
        """Read until the gateway closes the connection and return the close code."""
        async with asyncio.timeout(timeout):
            async for _ in self.events:
                pass
        return self.client.close_code


PeerFactory = Callable[..., Awaitable[Peer]]


@pytest.fixture
async def client_factory(gateway_factory: GatewayFactory) -> AsyncIterator[PeerFactory]:
    """Connect ``GatewayClient``s to a gateway; all are closed before the gateways stop.

    Call it as ``await client_factory(gateway, **options)``: ``options`` are
    ``GatewayClient`` keyword arguments overriding the token and ``TEST_CLIENT``.
    """
    clients: list[GatewayClient] = []

    async def connect(gateway: RunningGateway, **options: Any) -> Peer:
        client = GatewayClient(gateway.url, **{"token": gateway.token, **TEST_CLIENT, **options})
        clients.append(client)
        events = client.events()
        await client.connect()
        return Peer(client, events)

    yield connect
    for client in clients:
        await client.close()


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory for Unix sockets (AF_UNIX paths are limited to about 104 bytes)."""
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="cg"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def host(gateway_factory: GatewayFactory, socket_dir: Path) -> RunningGateway:
    """A gateway that serves the plugin socket in ``socket_dir``."""
    return await gateway_factory(ipc_socket=socket_dir / "gateway.sock")
