"""Caps on unauthenticated and total sockets, and per-device lockout (spec §1, §5.4, §11)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from clawgate.protocol.device_auth import DeviceIdentity
from clawgate.protocol.limits import Limits
from tests.conftest import GatewayFactory
from tests.wire import open_peer, request, signed_connect_params


async def test_unauthenticated_sockets_per_address_are_capped(
    gateway_factory: GatewayFactory,
) -> None:
    running = await gateway_factory(limits=Limits(max_unauthenticated_per_ip=4))
    async with aiohttp.ClientSession() as session:
        waiting = [await open_peer(session, running.url) for _ in range(4)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(running.url)
        assert caught.value.status == 503
        await waiting[0].authenticate(running.token)  # one leaves the unauthenticated pool
        admitted = await open_peer(session, running.url)
        await admitted.authenticate(running.token)


async def test_total_sockets_are_capped(gateway_factory: GatewayFactory) -> None:
    running = await gateway_factory(limits=Limits(max_connections=3))
    async with aiohttp.ClientSession() as session:
        peers = [await open_peer(session, running.url) for _ in range(3)]
        for peer in peers:
            await peer.authenticate(running.token)
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(running.url)
        assert caught.value.status == 503


async def test_a_device_is_locked_out_wherever_it_connects_from(
    gateway_factory: GatewayFactory,
) -> None:
    limits = Limits(auth_failure_delay_ms=0, auth_lockout_ms=60_000)
    running = await gateway_factory(limits=limits)
    identity = DeviceIdentity.generate()
    async with aiohttp.ClientSession() as session:
        for attempt in range(10):
            peer = await open_peer(session, running.url)
            params = signed_connect_params(identity, peer.challenge, token=f"wrong-{attempt}")
            await peer.send(request("connect", params, "c"))
            await peer.response("c")
        # Forget the address's failures: only the device's own count remains.
        running.server.access.throttle.forget("127.0.0.1")
        peer = await open_peer(session, running.url)
        params = signed_connect_params(identity, peer.challenge, token=running.token)
        await peer.send(request("connect", params, "c"))
        answer = await peer.response("c")
        assert answer["error"]["details"]["code"] == "AUTH_RATE_LIMITED"
        other = await open_peer(session, running.url)
        await other.authenticate(running.token)
    await asyncio.sleep(0)
