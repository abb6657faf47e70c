"""Client SDK with a device identity and device tokens against the real gateway (spec §4-§6)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from clawgate.client import (
    Backoff,
    DeviceIdentity,
    DeviceTokenStore,
    GatewayClient,
    GatewayHandshakeError,
    load_or_create_identity,
)
from tests.conftest import RunningGateway


def device_client(
    gateway: RunningGateway,
    identity: DeviceIdentity,
    store: DeviceTokenStore | None = None,
    *,
    shared_token: bool = True,
    **kw: Any,
) -> GatewayClient:
    """Return a client signing with ``identity``; with the gateway token unless told not to."""
    return GatewayClient(
        gateway.url,
        token=gateway.token if shared_token else None,
        identity=identity,
        device_tokens=store,
        **kw,
    )


async def paired_device_ids(gateway: RunningGateway) -> list[str]:
    async with GatewayClient(gateway.url, token=gateway.token) as admin:
        listing = await admin.call("device.pair.list")
    return [device["deviceId"] for device in listing["paired"]]


async def test_client_with_identity_connects_and_is_paired(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    identity = load_or_create_identity(tmp_path / "client")

    async with device_client(gateway, identity) as client:
        assert client.hello is not None
        assert client.hello["auth"]["role"] == "operator"
        assert client.hello["auth"]["deviceToken"]

    assert await paired_device_ids(gateway) == [identity.device_id]


async def test_second_identity_file_connects_as_another_device(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    first = load_or_create_identity(tmp_path / "first")
    second = load_or_create_identity(tmp_path / "second")
    assert first.device_id != second.device_id

    async with device_client(gateway, first), device_client(gateway, second):
        pass

    assert sorted(await paired_device_ids(gateway)) == sorted([first.device_id, second.device_id])


async def test_reloaded_identity_connects_as_the_same_device(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    home = tmp_path / "client"
    async with device_client(gateway, load_or_create_identity(home)):
        pass
    async with device_client(gateway, load_or_create_identity(home)):
        pass

    assert len(await paired_device_ids(gateway)) == 1


@pytest.mark.parametrize("protocol", [3, 4])
async def test_issued_device_token_is_stored(
    gateway: RunningGateway, tmp_path: Path, protocol: int
) -> None:
    identity = load_or_create_identity(tmp_path)
    store = DeviceTokenStore.in_home(tmp_path, identity)

    async with device_client(gateway, identity, store, max_protocol=protocol) as client:
        assert client.protocol == protocol
        issued = client.hello["auth"] if client.hello else {}

    stored = store.get("operator")
    assert stored is not None
    assert stored.token == issued["deviceToken"]
    assert stored.scopes == tuple(issued["scopes"])
    assert stored.issued_at_ms == issued["issuedAtMs"]


async def test_stored_device_token_logs_in_without_the_shared_token(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    identity = load_or_create_identity(tmp_path)
    store = DeviceTokenStore.in_home(tmp_path, identity)
    async with device_client(gateway, identity, store):
        pass
    stored = store.get("operator")
    assert stored is not None

    async with device_client(gateway, identity, store, shared_token=False) as client:
        assert await client.call("health") is not None
        assert client.hello is not None
        assert client.hello["auth"]["deviceToken"] == stored.token

    assert store.get("operator") == stored


async def test_stored_device_token_is_used_on_reconnect(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    identity = load_or_create_identity(tmp_path)
    store = DeviceTokenStore.in_home(tmp_path, identity)
    async with device_client(gateway, identity, store):
        pass
    reconnected = asyncio.Event()
    client = device_client(
        gateway,
        identity,
        store,
        shared_token=False,
        reconnect=True,
        backoff=Backoff(0.01, 0.05),
        on_reconnect=lambda hello: reconnected.set(),
    )

    async with client:
        await gateway.restart()
        async with asyncio.timeout(10):
            await reconnected.wait()
        assert await client.call("health") is not None


async def test_rejected_device_token_is_forgotten_and_the_shared_token_recovers(
    gateway: RunningGateway, tmp_path: Path
) -> None:
    identity = load_or_create_identity(tmp_path)
    store = DeviceTokenStore.in_home(tmp_path, identity)
    async with device_client(gateway, identity, store):
        pass
    revoked = store.get("operator")
    assert revoked is not None
    async with GatewayClient(gateway.url, token=gateway.token) as admin:
        revoke = {"deviceId": identity.device_id, "role": "operator"}
        await admin.call("device.token.revoke", revoke)

    with pytest.raises(GatewayHandshakeError) as caught:
        async with device_client(gateway, identity, store, shared_token=False):
            pass

    assert caught.value.detail_code == "AUTH_DEVICE_TOKEN_MISMATCH"
    assert store.get("operator") is None
    async with device_client(gateway, identity, store):
        pass
    fresh = store.get("operator")
    assert fresh is not None and fresh.token != revoked.token
