"""Client requests and responses (_requests.py) against the scripted fake gateway."""

from __future__ import annotations

import asyncio

import pytest

from clawgate.client import (
    ClientState,
    GatewayCallError,
    GatewayClient,
    GatewayConnectionError,
    GatewayTimeoutError,
)
from tests.integration.client.helpers import FakeGateway


async def test_call_returns_the_payload(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        assert await client.call("echo", {"a": 1}) == {"a": 1}


async def test_request_omits_params_when_none(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        await client.call("echo")

    assert "params" not in fake.requests[0]


async def test_call_raises_on_error_response(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        with pytest.raises(GatewayCallError) as info:
            await client.call("fail")
        response = await client.request("fail")

    assert info.value.code == "INVALID_REQUEST"
    assert info.value.details == {"code": "X"}
    assert not response.ok
    assert response.error is not None and response.error.message == "nope"


async def test_call_times_out(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        with pytest.raises(GatewayTimeoutError):
            await client.call("hang", timeout=0.1)
        with pytest.raises(TimeoutError):
            await client.call("hang", timeout=0.1)
        assert await client.call("echo", 1) == 1  # the connection is still usable


async def test_call_streaming_returns_accepted_then_final(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        accepted, final = await client.call_streaming("agent", {"message": "hi"})
        done = await asyncio.wait_for(final, 2)

    assert accepted["status"] == "accepted"
    assert done.ok and done.payload["status"] == "ok"


async def test_second_response_to_a_plain_call_is_ignored(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        accepted = await client.call("agent", {"message": "hi"})
        await asyncio.sleep(0.1)  # let the second response arrive
        assert accepted["status"] == "accepted"
        assert await client.call("echo", 2) == 2


async def test_pending_call_fails_when_the_server_closes(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        call = asyncio.create_task(client.call("hang", timeout=10))
        await asyncio.sleep(0.05)
        await fake.ws.close(code=1011, message=b"boom")

        with pytest.raises(GatewayConnectionError) as info:
            await asyncio.wait_for(call, 2)

        assert info.value.close_code == 1011
        assert info.value.close_reason == "boom"
        assert client.state is ClientState.CLOSED
        with pytest.raises(GatewayConnectionError):
            await client.call("echo", timeout=1)


async def test_send_raw_bytes_sends_a_binary_frame(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        await client.send_raw(b"\x00\x01")
        await client.call("echo", 1)  # ordered after the binary frame

    assert fake.binary_frames == [b"\x00\x01"]
