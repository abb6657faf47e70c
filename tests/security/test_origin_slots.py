"""A foreign web page cannot take the unauthenticated socket slots (spec §1, §5.5)."""

from __future__ import annotations

import asyncio
import base64
import os
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.conftest import RunningGateway
from tests.wire import open_peer


async def _foreign_upgrade(gateway: RunningGateway) -> tuple[asyncio.StreamWriter, bytes]:
    """Send a WebSocket upgrade from a foreign Origin; return the open socket and status line."""
    parts = urlsplit(gateway.url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET / HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 30)
    return writer, status


async def test_a_foreign_origin_upgrade_gets_403(gateway: RunningGateway) -> None:
    writer, status = await _foreign_upgrade(gateway)
    writer.close()
    assert status.startswith(b"HTTP/1.1 403")


async def test_64_foreign_upgrades_held_open_leave_the_owner_a_slot(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    held = [await _foreign_upgrade(gateway) for _ in range(64)]
    try:
        assert all(status.startswith(b"HTTP/1.1 403") for _, status in held)
        owner = await open_peer(session, gateway.url)
        hello = await owner.authenticate(gateway.token)
        assert hello["type"] == "hello-ok"
    finally:
        for writer, _ in held:
            writer.close()


async def test_an_allowed_origin_still_upgrades(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    peer = await open_peer(session, gateway.url, Origin="http://localhost:3000")
    assert peer.challenge["event"] == "connect.challenge"


async def test_the_sdk_sees_the_403(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(gateway.url, headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403
