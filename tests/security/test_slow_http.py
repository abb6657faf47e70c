"""Slow and malformed HTTP clients: closed in time, logged in one line (issue 17 point 5)."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from clawgate.protocol.limits import Limits
from tests.conftest import GatewayFactory, RunningGateway

SLOW_CLIENTS = 40


async def _slow_header_client(
    gateway: RunningGateway,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
    await writer.drain()
    return reader, writer  # the writer kept: a collected one closes its connection


async def test_slow_header_clients_are_closed_and_the_owner_is_still_served(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    limits = Limits(http_header_timeout_ms=1_000, tick_interval_ms=60_000)
    gateway = await gateway_factory(limits=limits)
    clients = [await _slow_header_client(gateway) for _ in range(SLOW_CLIENTS)]
    async with session.get(f"{gateway.http_url}/healthz") as response:
        assert response.status == 200
    ends = await asyncio.gather(*(asyncio.wait_for(r.read(), 30) for r, _ in clients))
    assert ends == [b""] * SLOW_CLIENTS


async def test_connections_over_the_per_address_cap_are_closed_at_once(
    gateway_factory: GatewayFactory,
) -> None:
    limits = Limits(http_max_connections_per_ip=4, tick_interval_ms=60_000)
    gateway = await gateway_factory(limits=limits)
    held = [await _slow_header_client(gateway) for _ in range(4)]
    extra, _writer = await _slow_header_client(gateway)
    assert await asyncio.wait_for(extra.read(), 30) == b""
    assert all(not reader.at_eof() for reader, _ in held)


async def test_a_too_long_header_line_is_one_warning_line_without_traceback(
    gateway_factory: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await gateway_factory()
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nX-Long: " + b"a" * 20_000 + b"\r\n\r\n")
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 30)
    assert b" 400 " in status
    writer.close()
    records = [r for r in caplog.records if "Error handling request" in r.getMessage()]
    assert len(records) == 1
    record = records[0]
    # Under the `clawgate` logger, so gateway.log's handler writes it in the gateway's format.
    assert record.name.startswith("clawgate.") and record.levelno == logging.WARNING
    assert record.exc_info is None and "LineTooLong" in record.getMessage()
    assert "\n" not in record.getMessage()
