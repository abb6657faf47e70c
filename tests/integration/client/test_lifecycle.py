"""Client lifecycle (_lifecycle.py) and the tick watchdog (_connection.py), against the fake."""

from __future__ import annotations

import asyncio

import pytest

from clawgate.client import ClientState, GatewayClient, GatewayConnectionError
from tests.integration.client.helpers import HELLO, FakeGateway, client_tasks


async def test_close_leaves_no_tasks_behind(fake: FakeGateway) -> None:
    client = GatewayClient(fake.url, reconnect=True)
    await client.connect()
    assert len(client_tasks()) == 2  # reader + supervisor

    await client.close()
    await client.close()  # idempotent

    assert client_tasks() == []
    assert client.state is ClientState.CLOSED


async def test_silent_gateway_is_closed_with_tick_timeout(fake: FakeGateway) -> None:
    fake.hello = {**HELLO, "policy": {**HELLO["policy"], "tickIntervalMs": 50}}

    async with GatewayClient(fake.url) as client:
        await asyncio.sleep(0.4)

        assert client.state is ClientState.CLOSED
        assert client.close_code == 4000
        assert client.close_reason == "tick timeout"


async def test_close_during_connect_aborts_the_handshake(fake: FakeGateway) -> None:
    fake.challenge_delay = 0.3
    client = GatewayClient(fake.url)
    connecting = asyncio.create_task(client.connect())
    await asyncio.sleep(0.1)

    await client.close()

    with pytest.raises(GatewayConnectionError):
        await asyncio.wait_for(connecting, 2)
    assert client.state is ClientState.CLOSED
    assert client_tasks() == []
