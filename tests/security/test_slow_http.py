"""Slow and malformed HTTP clients: closed in time, logged in one line (issue 17 point 5)."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import aiohttp
import pytest

from clawgate.protocol.limits import Limits
from tests.conftest import GatewayFactory, RunningGateway
from tests.e2e.test_cli import start_daemon, stop_daemon

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
    limits = Limits(http_read_timeout_ms=1_000, tick_interval_ms=60_000)
    gateway = await gateway_factory(limits=limits)
    clients = [await _slow_header_client(gateway) for _ in range(SLOW_CLIENTS)]
    async with session.get(f"{gateway.http_url}/healthz") as response:
        assert response.status == 200
    ends = await asyncio.gather(*(asyncio.wait_for(r.read(), 30) for r, _ in clients))
    assert ends == [b""] * SLOW_CLIENTS


async def test_a_half_sent_request_is_a_warning_but_an_idle_keep_alive_closes_quietly(
    gateway_factory: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="clawgate.gateway.http")
    limits = Limits(http_read_timeout_ms=1_000, tick_interval_ms=60_000)
    gateway = await gateway_factory(limits=limits)
    slow_reader, _slow = await _slow_header_client(gateway)
    idle_reader, idle = await asyncio.open_connection("127.0.0.1", gateway.server.port)
    idle.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # answered, then kept idle
    ends = await asyncio.gather(
        asyncio.wait_for(slow_reader.read(), 30), asyncio.wait_for(idle_reader.read(), 30)
    )
    assert ends[0] == b""
    assert ends[1].startswith(b"HTTP/1.1 200") and ends[1].endswith(b"}")  # then closed
    closes = [r for r in caplog.records if "HTTP client" in r.getMessage()]
    levels = sorted((r.levelno, "idle" in r.getMessage()) for r in closes)
    assert levels == [(logging.DEBUG, True), (logging.WARNING, False)]


async def test_a_client_trickling_its_body_is_closed_after_the_read_timeout(
    gateway_factory: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from clawgate.config import OpenAIHttpSection

    limits = Limits(http_read_timeout_ms=1_000, tick_interval_ms=60_000)
    gateway = await gateway_factory(limits=limits, openai_http=OpenAIHttpSection(enabled=True))
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.server.port)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {gateway.token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 100000\r\n\r\n"
    )
    writer.write(head.encode())
    # One byte every 100 ms never goes quiet for long: only a deadline on the whole body ends it.
    for _ in range(300):
        writer.write(b" ")
        await writer.drain()
        try:
            end = await asyncio.wait_for(reader.read(), 0.1)
        except TimeoutError:
            continue
        assert end == b""
        closes = [r for r in caplog.records if r.name.startswith("clawgate.gateway.http")]
        assert ["request body not received" in r.getMessage() for r in closes] == [True]
        return
    raise AssertionError("the trickling client was still connected after 300 bytes")


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


def test_a_bad_request_line_is_one_warning_line_in_the_daemons_gateway_log(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    daemon = start_daemon(home)
    try:
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as sock:
            # A known method with a bad version: aiohttp logs an unknown method (scanners,
            # TLS on the plain port) at debug only, so it would never reach gateway.log.
            sock.sendall(b"GET /healthz HTTP/9.9\r\n\r\n")
            assert b" 400 " in sock.recv(4096).split(b"\r\n")[0]
    finally:
        returncode, _ = stop_daemon(daemon)
    assert returncode == 0
    log = (home / "logs" / "gateway.log").read_text()
    lines = [line for line in log.splitlines() if "Error handling request" in line]
    assert len(lines) == 1 and "WARNING" in lines[0] and "BadStatusLine" in lines[0]
    assert "Traceback" not in log
