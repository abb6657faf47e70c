"""Client handshake (_handshake.py) against the scripted fake gateway."""

from __future__ import annotations

import json

import pytest

from clawgate.client import (
    ClientState,
    GatewayClient,
    GatewayConnectionError,
    GatewayHandshakeError,
    GatewayTimeoutError,
)
from tests.integration.client.helpers import HELLO, FakeGateway, client_tasks


async def test_connect_sends_spec_shaped_params_without_nulls(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url, token="s3cret", client_version="9.9.9") as client:
        assert client.hello == HELLO
        assert client.protocol == 4

    frame = fake.connects[0]
    assert set(frame) == {"type", "id", "method", "params"}
    assert frame["method"] == "connect"
    assert frame["params"]["minProtocol"] == 3
    assert frame["params"]["maxProtocol"] == 4
    assert frame["params"]["client"]["id"] == "gateway-client"
    assert frame["params"]["client"]["mode"] == "backend"
    assert frame["params"]["client"]["version"] == "9.9.9"
    assert "displayName" not in frame["params"]["client"]
    assert frame["params"]["auth"] == {"token": "s3cret"}
    assert frame["params"]["scopes"] == ["operator.admin"]
    assert "caps" not in frame["params"]
    assert "null" not in json.dumps(frame)


async def test_extra_connect_params_are_merged_at_top_level(fake: FakeGateway) -> None:
    extra = {"locale": "en-GB", "userAgent": None}
    async with GatewayClient(fake.url, caps=["tool-events"], extra_connect_params=extra):
        pass

    params = fake.connects[0]["params"]
    assert params["locale"] == "en-GB"
    assert "userAgent" not in params
    assert params["caps"] == ["tool-events"]
    assert "auth" not in params


async def test_connect_waits_for_the_challenge(fake: FakeGateway) -> None:
    fake.challenge_delay = 0.2

    async with GatewayClient(fake.url) as client:
        assert client.connected


async def test_refused_handshake_raises_with_close_code(fake: FakeGateway) -> None:
    fake.refusal = {"code": "NOT_PAIRED", "message": "pairing required", "details": {"code": "P"}}
    client = GatewayClient(fake.url)

    with pytest.raises(GatewayHandshakeError) as info:
        await client.connect()

    assert info.value.code == "NOT_PAIRED"
    assert info.value.detail_code == "P"
    assert info.value.close_code == 1008
    assert info.value.close_reason == "pairing required"
    assert str(info.value) == "NOT_PAIRED: pairing required"
    assert client.state is ClientState.CLOSED
    assert client_tasks() == []


async def test_connection_refused_raises_connection_error(unused_tcp_port: int) -> None:
    client = GatewayClient(f"ws://127.0.0.1:{unused_tcp_port}/", connect_timeout=2)

    with pytest.raises(GatewayConnectionError):
        await client.connect()


async def test_silent_server_times_out_the_handshake(fake: FakeGateway) -> None:
    fake.challenge_delay = 5
    client = GatewayClient(fake.url, connect_timeout=0.2)

    with pytest.raises(GatewayTimeoutError):
        await client.connect()
