"""Asking for more than a device was approved for needs the shared secret (spec §6)."""

from __future__ import annotations

from typing import Any

import aiohttp

from clawgate.protocol.device_auth import DeviceIdentity
from tests.conftest import RunningGateway
from tests.wire import open_peer, request, signed_connect_params


async def _device_connect(
    session: aiohttp.ClientSession, gateway: RunningGateway, identity: DeviceIdentity, **kw: Any
) -> dict[str, Any]:
    peer = await open_peer(session, gateway.url)
    await peer.send(request("connect", signed_connect_params(identity, peer.challenge, **kw), "c"))
    answer = await peer.response("c", timeout=30)
    await peer.ws.close()
    return answer


async def _read_only_device(
    session: aiohttp.ClientSession, gateway: RunningGateway
) -> tuple[DeviceIdentity, str]:
    identity = DeviceIdentity.generate()
    first = await _device_connect(
        session, gateway, identity, token=gateway.token, scopes=("operator.read",)
    )
    return identity, first["payload"]["auth"]["deviceToken"]


async def _pending(session: aiohttp.ClientSession, gateway: RunningGateway) -> list[Any]:
    admin = await open_peer(session, gateway.url)
    await admin.authenticate(gateway.token)
    await admin.send(request("device.pair.list", {}, "l"))
    pending: list[Any] = (await admin.response("l"))["payload"]["pending"]
    return pending


async def test_a_device_token_alone_cannot_upgrade_to_admin(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    identity, device_token = await _read_only_device(session, gateway)
    answer = await _device_connect(
        session, gateway, identity, device_token=device_token, scopes=("operator.admin",)
    )
    assert answer["ok"] is False
    assert answer["error"]["details"]["code"] == "PAIRING_REQUIRED"
    assert answer["error"]["details"]["reason"] == "scope-upgrade"
    pending = await _pending(session, gateway)
    assert [p["requestId"] for p in pending] == [answer["error"]["details"]["requestId"]]


async def test_an_operator_device_token_does_not_open_the_node_role(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    identity, device_token = await _read_only_device(session, gateway)
    node_client = {"id": "node-host", "version": "1.0", "platform": "linux", "mode": "node"}
    answer = await _device_connect(
        session,
        gateway,
        identity,
        device_token=device_token,
        role="node",
        scopes=(),
        client=node_client,
    )
    assert answer["ok"] is False
    assert answer["error"]["details"]["code"] == "AUTH_DEVICE_TOKEN_MISMATCH"


async def test_the_shared_secret_upgrades_a_loopback_device_at_once(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    identity, _ = await _read_only_device(session, gateway)
    answer = await _device_connect(
        session, gateway, identity, token=gateway.token, scopes=("operator.admin",)
    )
    assert answer["ok"] is True
    assert answer["payload"]["auth"]["scopes"] == ["operator.admin"]


async def test_a_device_token_within_its_scopes_still_logs_in(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    identity, device_token = await _read_only_device(session, gateway)
    answer = await _device_connect(
        session, gateway, identity, device_token=device_token, scopes=("operator.read",)
    )
    assert answer["ok"] is True
