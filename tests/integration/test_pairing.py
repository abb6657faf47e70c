"""Device pairing, device tokens and their revocation over real sockets (spec §4 to §6)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from clawgate.protocol.device_auth import DeviceIdentity
from tests.conftest import GatewayFactory, RunningGateway
from tests.wire import RawPeer, open_peer, request, signed_connect_params


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def manual(gateway_factory: GatewayFactory) -> RunningGateway:
    """A gateway that asks an operator to approve even loopback devices."""
    return await gateway_factory(auto_approve_loopback=False)


async def device_connect(
    session: aiohttp.ClientSession, gateway: RunningGateway, identity: DeviceIdentity, **kw: Any
) -> tuple[RawPeer, dict[str, Any]]:
    peer = await open_peer(session, gateway.url)
    kw.setdefault("token", gateway.token)
    await peer.send(request("connect", signed_connect_params(identity, peer.challenge, **kw), "c"))
    return peer, await peer.response("c")


async def operator(session: aiohttp.ClientSession, gateway: RunningGateway) -> RawPeer:
    peer = await open_peer(session, gateway.url)
    await peer.authenticate(gateway.token, scopes=["operator.admin"])
    return peer


async def next_event(peer: RawPeer, name: str) -> dict[str, Any]:
    async with asyncio.timeout(5):
        while True:
            frame = await peer.next_frame()
            assert frame is not None
            if frame["type"] == "event" and frame["event"] == name:
                return frame


async def call(peer: RawPeer, method: str, params: Any = None) -> dict[str, Any]:
    frame_id = f"{method}-{id(params)}"
    await peer.send(request(method, params, frame_id))
    return await peer.response(frame_id)


async def test_loopback_device_is_auto_approved_and_gets_a_token(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    watcher = await operator(session, gateway)
    identity = DeviceIdentity.generate()
    _, answer = await device_connect(session, gateway, identity)
    auth = answer["payload"]["auth"]
    assert auth["role"] == "operator" and len(auth["deviceToken"]) == 43
    resolved = await next_event(watcher, "device.pair.resolved")
    assert resolved["payload"]["decision"] == "approved"
    assert resolved["payload"]["deviceId"] == identity.device_id
    listing = (await call(watcher, "device.pair.list"))["payload"]
    assert [d["deviceId"] for d in listing["paired"]] == [identity.device_id]
    assert auth["deviceToken"] not in str(listing)


async def test_device_token_alone_logs_in_and_is_returned_as_is(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    identity = DeviceIdentity.generate()
    _, first = await device_connect(session, gateway, identity)
    token = first["payload"]["auth"]["deviceToken"]
    _, again = await device_connect(session, gateway, identity, token=None, device_token=token)
    assert again["ok"] is True and again["payload"]["auth"]["deviceToken"] == token


async def test_a_token_does_not_work_for_another_device(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    alice, bob = DeviceIdentity.generate(), DeviceIdentity.generate()
    _, first = await device_connect(session, gateway, alice)
    await device_connect(session, gateway, bob)
    token = first["payload"]["auth"]["deviceToken"]
    peer, answer = await device_connect(session, gateway, bob, token=None, device_token=token)
    assert answer["error"]["details"]["code"] == "AUTH_DEVICE_TOKEN_MISMATCH"
    assert await peer.closed() == 1008


async def test_replayed_connect_is_refused(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    identity = DeviceIdentity.generate()
    first = await open_peer(session, gateway.url)
    params = signed_connect_params(identity, first.challenge, token=gateway.token)
    second = await open_peer(session, gateway.url)
    await second.send(request("connect", params, "replay"))
    answer = await second.response("replay")
    assert answer["error"]["details"]["code"] == "DEVICE_AUTH_NONCE_MISMATCH"
    assert await second.closed() == 1008


async def test_pairing_request_approve_and_reconnect(
    manual: RunningGateway, session: aiohttp.ClientSession
) -> None:
    watcher = await operator(session, manual)
    identity = DeviceIdentity.generate()
    peer, answer = await device_connect(session, manual, identity)
    assert answer["error"]["code"] == "NOT_PAIRED"
    details = answer["error"]["details"]
    assert details["code"] == "PAIRING_REQUIRED" and details["reason"] == "not-paired"
    assert await peer.closed() == 1008
    requested = await next_event(watcher, "device.pair.requested")
    assert requested["payload"]["requestId"] == details["requestId"]
    # A retry with the same ask refreshes the same request.
    _, retry = await device_connect(session, manual, identity)
    assert retry["error"]["details"]["requestId"] == details["requestId"]
    approved = await call(watcher, "device.pair.approve", {"requestId": details["requestId"]})
    assert approved["payload"]["device"]["deviceId"] == identity.device_id
    _, welcome = await device_connect(session, manual, identity)
    assert welcome["ok"] is True and welcome["payload"]["auth"]["deviceToken"]


async def test_scope_upgrade_reenters_pairing(
    manual: RunningGateway, session: aiohttp.ClientSession
) -> None:
    watcher = await operator(session, manual)
    identity = DeviceIdentity.generate()
    _, answer = await device_connect(session, manual, identity)
    await call(
        watcher, "device.pair.approve", {"requestId": answer["error"]["details"]["requestId"]}
    )
    _, upgrade = await device_connect(
        session, manual, identity, scopes=("operator.read", "operator.write")
    )
    assert upgrade["error"]["details"]["reason"] == "scope-upgrade"


async def test_reject_and_unknown_request(
    manual: RunningGateway, session: aiohttp.ClientSession
) -> None:
    watcher = await operator(session, manual)
    identity = DeviceIdentity.generate()
    _, answer = await device_connect(session, manual, identity)
    request_id = answer["error"]["details"]["requestId"]
    rejected = await call(watcher, "device.pair.reject", {"requestId": request_id})
    assert rejected["payload"] == {"requestId": request_id, "deviceId": identity.device_id}
    again = await call(watcher, "device.pair.approve", {"requestId": request_id})
    assert again["error"]["code"] == "INVALID_REQUEST"


async def test_approver_cannot_grant_more_than_it_holds(
    manual: RunningGateway, session: aiohttp.ClientSession
) -> None:
    limited = await open_peer(session, manual.url)
    await limited.authenticate(manual.token, scopes=["operator.pairing"])
    identity = DeviceIdentity.generate()
    _, answer = await device_connect(session, manual, identity, scopes=("operator.admin",))
    refused = await call(
        limited, "device.pair.approve", {"requestId": answer["error"]["details"]["requestId"]}
    )
    assert refused["error"]["details"]["code"] == "MISSING_SCOPE"


async def test_rotate_makes_the_old_token_useless(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    admin = await operator(session, gateway)
    identity = DeviceIdentity.generate()
    _, first = await device_connect(session, gateway, identity)
    old = first["payload"]["auth"]["deviceToken"]
    rotated = await call(
        admin, "device.token.rotate", {"deviceId": identity.device_id, "role": "operator"}
    )
    assert "token" not in rotated["payload"]  # only the device itself sees the value
    _, refused = await device_connect(session, gateway, identity, token=None, device_token=old)
    assert refused["error"]["details"]["code"] == "AUTH_DEVICE_TOKEN_MISMATCH"


async def test_revoke_closes_the_device_socket_with_4001(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    admin = await operator(session, gateway)
    identity = DeviceIdentity.generate()
    device, _ = await device_connect(session, gateway, identity)
    revoked = await call(
        admin, "device.token.revoke", {"deviceId": identity.device_id, "role": "operator"}
    )
    assert revoked["payload"]["revokedAtMs"] > 0
    assert await device.closed() == 4001
    assert device.ws.close_code == 4001


async def test_remove_closes_with_4001_and_forgets_the_device(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    admin = await operator(session, gateway)
    identity = DeviceIdentity.generate()
    device, _ = await device_connect(session, gateway, identity)
    removed = await call(admin, "device.pair.remove", {"deviceId": identity.device_id})
    assert removed["payload"] == {"ok": True, "deviceId": identity.device_id}
    assert await device.closed() == 4001
    listing = (await call(admin, "device.pair.list"))["payload"]
    assert listing["paired"] == []


async def test_pairing_survives_a_restart(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    identity = DeviceIdentity.generate()
    _, first = await device_connect(session, gateway, identity)
    token = first["payload"]["auth"]["deviceToken"]
    await gateway.restart()
    _, again = await device_connect(session, gateway, identity, token=None, device_token=token)
    assert again["ok"] is True
    state = (gateway.home / "state.db").read_bytes()
    assert token.encode() not in state


async def test_a_device_revoking_its_own_token_gets_the_answer_then_4001(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    identity = DeviceIdentity.generate()
    device, _ = await device_connect(
        session, gateway, identity, scopes=("operator.read", "operator.pairing")
    )
    answer = await call(
        device, "device.token.revoke", {"deviceId": identity.device_id, "role": "operator"}
    )
    assert answer["ok"] is True
    assert await device.closed() == 4001
