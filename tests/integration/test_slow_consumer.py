"""A client that stops reading is closed as a slow consumer without slowing anyone else."""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import socket
import time

import aiohttp
import orjson

from clawgate.protocol.limits import KIB, Limits
from tests.conftest import GatewayFactory
from tests.wire import RawPeer, connect_params, open_peer, request

HEALTHY_CLIENTS = 50
TICK_MS = 100


def masked_text_frame(payload: bytes) -> bytes:
    """Encode one client-to-server text frame (clients must mask, RFC 6455 §5.3)."""
    header = bytearray([0x81])
    length = len(payload)
    if length < 126:
        header.append(0x80 | length)
    elif length < 65_536:
        header.append(0x80 | 126)
        header += length.to_bytes(2, "big")
    else:
        header.append(0x80 | 127)
        header += length.to_bytes(8, "big")
    mask = os.urandom(4)
    header += mask
    return bytes(header) + bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))


async def open_stalled_client(port: int, token: str) -> asyncio.StreamWriter:
    """Upgrade a socket with a tiny receive buffer, authenticate, and never read again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    connect = request("connect", connect_params(token), "c")
    writer.write(masked_text_frame(connect.encode()))
    await writer.drain()
    return writer


async def collect_ticks(peer: RawPeer, arrivals: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        frame = await peer.next_frame(timeout=10)
        assert frame is not None, "a healthy client was disconnected"
        if frame["type"] == "event" and frame["event"] == "tick":
            arrivals.append(time.monotonic())


async def test_stalled_client_is_closed_while_others_keep_receiving_ticks(
    gateway_factory: GatewayFactory,
) -> None:
    running = await gateway_factory(
        limits=Limits(tick_interval_ms=TICK_MS, max_buffered_bytes=256 * KIB)
    )
    server = running.server
    # A log file large enough that each logs.tail answer is about a megabyte.
    (running.home / "logs" / "gateway.log").write_text(("x" * 199 + "\n") * 5000)
    async with aiohttp.ClientSession() as session:
        healthy = []
        for _ in range(HEALTHY_CLIENTS):
            peer = await open_peer(session, running.url)
            await peer.authenticate(running.token)
            healthy.append(peer)
        arrivals: list[list[float]] = [[] for _ in healthy]
        stop = asyncio.Event()
        readers = [
            asyncio.create_task(collect_ticks(peer, times, stop))
            for peer, times in zip(healthy, arrivals, strict=True)
        ]

        stalled = await open_stalled_client(server.port, running.token)
        ask_for_a_lot = request("logs.tail", {"cursor": 0, "limit": 5000, "maxBytes": 1_000_000})
        for _ in range(30):
            stalled.write(masked_text_frame(ask_for_a_lot.encode()))
        await stalled.drain()

        async with asyncio.timeout(20):
            while server.metrics.slow_consumers < 1:
                await asyncio.sleep(0.05)
        closed_at = time.monotonic()
        # Keep watching the healthy clients for a while after the slow one was dropped.
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*readers, return_exceptions=True)
        stalled.close()

        assert len(server.broadcaster) == HEALTHY_CLIENTS
        for times in arrivals:
            assert len(times) >= 5
            assert any(at > closed_at for at in times)
            gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
            # Ticks are due every 100 ms; a stalled peer must not hold anyone up for long.
            assert max(gaps) < 2.0
        for peer in healthy:
            await peer.ws.close()


async def test_response_larger_than_max_payload_is_replaced(
    gateway_factory: GatewayFactory,
) -> None:
    running = await gateway_factory(limits=Limits(max_payload=64 * KIB))
    (running.home / "logs" / "gateway.log").write_text(("y" * 99 + "\n") * 2000)
    async with aiohttp.ClientSession() as session:
        peer = await open_peer(session, running.url)
        await peer.authenticate(running.token)
        await peer.send(request("logs.tail", {"cursor": 0, "maxBytes": 200_000, "limit": 5000}))
        answer = await peer.response()
        assert answer["error"] == {"code": "UNAVAILABLE", "message": "response too large"}
        assert orjson.dumps(answer)
