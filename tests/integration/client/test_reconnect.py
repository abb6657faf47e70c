"""Client reconnect (_reconnect.py) against the scripted fake gateway."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from clawgate.client import Backoff, ClientState, GatewayClient, GatewayConnectionError
from tests.integration.client.helpers import HELLO, FakeGateway, client_tasks, event, fast_backoff


async def test_reconnects_after_service_restart_and_resets_seq(fake: FakeGateway) -> None:
    hellos: list[dict[str, Any]] = []

    async def on_reconnect(hello: dict[str, Any]) -> None:
        hellos.append(hello)

    client = GatewayClient(
        fake.url, reconnect=True, backoff=fast_backoff(), on_reconnect=on_reconnect
    )
    async with client:
        stream = client.events()
        await fake.ws.send_json(event("tick", {}, seq=1))
        assert (await anext(stream)).seq == 1

        fake.opened.clear()
        await fake.ws.close(code=1012, message=b"service restart")
        await asyncio.wait_for(fake.opened.wait(), 2)
        await fake.ws.send_json(event("tick", {}, seq=1))  # a new connection restarts at 1

        assert (await asyncio.wait_for(anext(stream), 2)).seq == 1
        assert await client.call("echo", 3) == 3
        assert hellos == [HELLO]
        assert client.close_code == 1012


async def test_call_while_reconnecting_waits_for_the_new_connection(fake: FakeGateway) -> None:
    client = GatewayClient(fake.url, reconnect=True, backoff=Backoff(0.3, 0.3, rand=max))
    async with client:
        await fake.ws.close(code=1012, message=b"service restart")
        await asyncio.sleep(0.05)
        assert client.state is ClientState.RECONNECTING

        assert await client.call("echo", 4, timeout=5) == 4


async def test_no_reconnect_after_an_auth_refusal(fake: FakeGateway) -> None:
    client = GatewayClient(fake.url, reconnect=True, backoff=fast_backoff())
    async with client:
        stream = client.events()
        fake.refusal = {
            "code": "INVALID_REQUEST",
            "message": "unauthorized: gateway token mismatch",
            "details": {"code": "AUTH_TOKEN_MISMATCH"},
        }
        await fake.ws.close(code=4001, message=b"gateway auth changed")

        assert [ev async for ev in stream] == []  # ends when the client gives up
        await asyncio.sleep(0.2)
        assert client.state is ClientState.CLOSED
        assert len(fake.connects) == 2  # the original and exactly one refused retry
        assert client.close_code == 1008
        with pytest.raises(GatewayConnectionError):
            await client.call("echo", timeout=1)
        assert client_tasks() == []


async def test_keeps_retrying_while_the_gateway_is_down(unused_tcp_port: int) -> None:
    fake = FakeGateway()
    fake.port = unused_tcp_port
    await fake.start()
    client = GatewayClient(fake.url, reconnect=True, backoff=fast_backoff())
    try:
        await client.connect()
        await fake.stop()
        await asyncio.sleep(0.3)  # several refused attempts
        assert client.state is ClientState.RECONNECTING

        await fake.start()
        assert await client.call("echo", 5, timeout=5) == 5
    finally:
        await client.close()
        await fake.stop()
