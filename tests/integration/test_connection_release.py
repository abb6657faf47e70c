"""A closed connection is freed at once, not when the cyclic garbage collector next runs."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from clawgate.gateway.connection import Connection
from tests.conftest import RunningGateway
from tests.integration.conftest import PeerFactory


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    """Leave only reference counting to free objects while the test runs."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def alive(conn_id: str) -> bool:
    return any(isinstance(o, Connection) and o.conn_id == conn_id for o in gc.get_objects())


@pytest.mark.usefixtures("no_cyclic_gc")
async def test_a_closed_connection_is_freed_by_reference_counting(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await client_factory(gateway, instance_id="leaving")
    conn_id = peer.hello["server"]["connId"]
    await peer.client.call("health")
    await peer.next_event("presence")
    assert alive(conn_id)
    await peer.client.close()
    async with asyncio.timeout(5):
        while len(gateway.server.connections):
            await asyncio.sleep(0.01)
        while alive(conn_id):  # teardown finishes just after the connection leaves
            await asyncio.sleep(0.01)
