"""A device that must be paired learns its request id and the command that approves it."""

from __future__ import annotations

import pytest

from clawgate.client import GatewayClient, GatewayHandshakeError
from clawgate.protocol.device_auth import DeviceIdentity
from tests.conftest import GatewayFactory


async def test_not_paired_error_carries_the_request_id_and_approve_command(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = await gateway_factory(auto_approve_loopback=False)
    client = GatewayClient(gateway.url, token=gateway.token, identity=DeviceIdentity.generate())
    with pytest.raises(GatewayHandshakeError) as raised:
        await client.connect()
    await client.close()
    error = raised.value
    assert error.code == "NOT_PAIRED"
    request_id = error.details["requestId"]
    assert error.pairing_request_id == request_id
    assert error.approve_command == f"clawgate devices approve {request_id}"
    assert f"`clawgate devices approve {request_id}`" in str(error)
