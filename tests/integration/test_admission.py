"""Caps on unauthenticated and total sockets (spec §1, §11); lockouts are in tests/security."""

from __future__ import annotations

import aiohttp
import pytest

from clawgate.protocol.limits import Limits
from tests.conftest import GatewayFactory
from tests.wire import open_peer


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
