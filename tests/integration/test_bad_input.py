"""Every kind of bad input gets its exact error code or close code (spec §2.3, §3.5, §14)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from clawgate.protocol.limits import KIB, Limits
from tests.conftest import GatewayFactory, RunningGateway
from tests.wire import connect_params, open_peer, request

SMALL_PAYLOAD = 128 * KIB


@dataclass(frozen=True)
class Case:
    """One bad input: what to send, and what must come back."""

    name: str
    frames: tuple[str | bytes, ...]
    authenticate: bool = False
    code: str | None = None  # error.code of the response, if one is expected
    detail: str | None = None  # error.details.code, if any
    message: str | None = None
    close: int | None = None  # expected close code; None means the socket stays open
    reply_id: str | None = None
    connect_overrides: tuple[tuple[str, Any], ...] = ()


TOKEN = "{token}"  # replaced by the fixture's token


def preauth(params: dict[str, Any] | None = None, method: str = "connect") -> str:
    return request(method, params, "c1")


CASES = [
    Case("non-JSON first frame", ("hello?",), close=1008),
    Case(
        "wrong first method",
        (preauth(None, "health"),),
        code="INVALID_REQUEST",
        message="invalid handshake: first request must be connect",
        close=1008,
    ),
    Case(
        "extra connect field",
        (preauth(connect_params(TOKEN, bogus=1)),),
        code="INVALID_REQUEST",
        message="invalid connect params: at root: unexpected property 'bogus'",
        close=1008,
    ),
    Case(
        "numeric frame id",
        ('{"type":"req","id":1,"method":"connect","params":{}}',),
        close=1008,
    ),
    Case(
        "wrong protocol range",
        (preauth(connect_params(TOKEN, minProtocol=99, maxProtocol=99)),),
        code="INVALID_REQUEST",
        detail="PROTOCOL_MISMATCH",
        close=1002,
    ),
    Case(
        "wrong token",
        (preauth(connect_params("not-the-token")),),
        code="INVALID_REQUEST",
        detail="AUTH_TOKEN_MISMATCH",
        close=1008,
    ),
    Case(
        "missing token",
        (preauth(connect_params(None)),),
        code="INVALID_REQUEST",
        detail="AUTH_TOKEN_MISSING",
        close=1008,
    ),
    Case("oversize pre-auth frame", ("x" * (65 * KIB),), close=1009),
    Case("binary frame pre-auth", (b'{"type":"req"}',), close=1003),
    Case(
        "duplicate connect",
        (preauth(connect_params(TOKEN)),),
        authenticate=True,
        code="INVALID_REQUEST",
        message="connect is only valid as the first request",
        reply_id="c1",
    ),
    Case(
        "unknown method",
        (request("no.such.method"),),
        authenticate=True,
        code="INVALID_REQUEST",
        message="unknown method: no.such.method",
    ),
    Case(
        "bad params",
        (request("health", {"probe": "yes"}),),
        authenticate=True,
        code="INVALID_REQUEST",
        message="invalid health params: at /probe: input should be a valid boolean",
    ),
    Case(
        "unknown params field",
        (request("status", {"verbose": True}),),
        authenticate=True,
        code="INVALID_REQUEST",
        message="invalid status params: at root: unexpected property 'verbose'",
    ),
    Case(
        "missing scope (v4)",
        (request("status"),),
        authenticate=True,
        connect_overrides=(("scopes", []),),
        code="FORBIDDEN",
        detail="MISSING_SCOPE",
        message="missing scope: operator.read",
    ),
    Case(
        "missing scope (v3)",
        (request("system-event", {"text": "x"}),),
        authenticate=True,
        connect_overrides=(("scopes", ["operator.write"]), ("maxProtocol", 3)),
        code="INVALID_REQUEST",
        detail="MISSING_SCOPE",
    ),
    Case(
        "non-JSON after auth",
        ("{oops",),
        authenticate=True,
        code="INVALID_REQUEST",
        message="invalid request frame: not a JSON object",
        reply_id="invalid",
    ),
    Case(
        "request shape with id",
        ('{"type":"req","id":"q","method":""}',),
        authenticate=True,
        code="INVALID_REQUEST",
        reply_id="q",
    ),
    Case("binary frame after auth", (b"{}",), authenticate=True, close=1003),
    Case("oversize frame after auth", ("x" * (SMALL_PAYLOAD + 1),), authenticate=True, close=1009),
    Case(
        "ten invalid frames in a row",
        ("nope",) * 10,
        authenticate=True,
        code="INVALID_REQUEST",
        close=1008,
    ),
    Case(
        "ten refusals in a row",
        (request("status"),) * 10,
        authenticate=True,
        connect_overrides=(("scopes", []),),
        code="FORBIDDEN",
        close=1008,
    ),
]


@pytest.fixture
async def server(gateway_factory: GatewayFactory) -> RunningGateway:
    return await gateway_factory(limits=Limits(tick_interval_ms=60_000, max_payload=SMALL_PAYLOAD))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def materialise(frame: str | bytes, token: str) -> str | bytes:
    return frame.replace(TOKEN, token) if isinstance(frame, str) else frame


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_bad_input_gets_defined_answer(
    case: Case, server: RunningGateway, session: aiohttp.ClientSession
) -> None:
    peer = await open_peer(session, server.url)
    if case.authenticate:
        await peer.authenticate(server.token, **dict(case.connect_overrides))
    for frame in case.frames:
        await peer.send(materialise(frame, server.token))
    if case.code is not None:
        answer = await peer.response()
        assert answer["ok"] is False
        error = answer["error"]
        assert error["code"] == case.code
        if case.detail is not None:
            assert error["details"]["code"] == case.detail
        if case.message is not None:
            assert error["message"] == case.message
        if case.reply_id is not None:
            assert answer["id"] == case.reply_id
    if case.close is None:
        await peer.send(request("health", None, "still-open"))
        assert (await peer.response("still-open"))["ok"] is True
    else:
        assert await peer.closed() == case.close
    await peer.ws.close()


async def test_invalid_utf8_closes_1007(
    server: RunningGateway, session: aiohttp.ClientSession
) -> None:
    peer = await open_peer(session, server.url)
    await peer.authenticate(server.token)
    await peer.ws.send_frame(b'{"type":"\xff"}', aiohttp.WSMsgType.TEXT)
    assert await peer.closed() == 1007


async def test_a_1009_close_carries_its_reason(
    server: RunningGateway, session: aiohttp.ClientSession
) -> None:
    peer = await open_peer(session, server.url)
    await peer.authenticate(server.token)
    await peer.send("x" * (SMALL_PAYLOAD + 1))
    while (message := await peer.ws.receive(timeout=30)).type is not aiohttp.WSMsgType.CLOSE:
        pass
    assert (message.data, message.extra) == (1009, "frame too large")


async def test_a_1009_close_before_hello_ok_carries_its_reason(
    server: RunningGateway, session: aiohttp.ClientSession
) -> None:
    peer = await open_peer(session, server.url)
    await peer.send("x" * (Limits().preauth_max_payload + 1))
    while (message := await peer.ws.receive(timeout=30)).type is not aiohttp.WSMsgType.CLOSE:
        pass
    assert (message.data, message.extra) == (1009, "preauth payload too large")


async def test_silence_past_the_handshake_timeout_closes_1000(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    running = await gateway_factory(limits=Limits(handshake_timeout_ms=1000))
    peer = await open_peer(session, running.url)
    assert await peer.closed(timeout=5) == 1000
    assert peer.ws.close_code == 1000


async def test_gateway_starting_answers_1013(
    server: RunningGateway, session: aiohttp.ClientSession
) -> None:
    server.server.connections.ready = False
    peer = await open_peer(session, server.url)
    await peer.send(request("connect", connect_params(server.token), "c1"))
    answer = await peer.response("c1")
    assert answer["error"]["code"] == "UNAVAILABLE"
    assert answer["error"]["retryable"] is True
    assert await peer.closed() == 1013


async def test_refusal_counter_resets_after_an_authorized_call(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession
) -> None:
    running = await gateway_factory(limits=Limits(tick_interval_ms=60_000))
    peer = await open_peer(session, running.url)
    await peer.authenticate(running.token, scopes=["operator.read"])
    for index in range(9):
        await peer.send(request("system-event", {"text": "x"}, f"deny{index}"))
        await peer.response(f"deny{index}")
    await peer.send(request("status", None, "allowed"))
    assert (await peer.response("allowed"))["ok"] is True
    await peer.send(request("system-event", {"text": "x"}, "deny-again"))
    assert (await peer.response("deny-again"))["error"]["code"] == "FORBIDDEN"
    await peer.send(request("health", None, "alive"))
    assert (await peer.response("alive"))["ok"] is True


async def test_oversize_preauth_frame_is_refused_from_its_header(server: RunningGateway) -> None:
    """A header announcing 20 MiB is refused at once: the payload is never awaited or buffered."""
    import base64
    import os

    reader, writer = await asyncio.open_connection("127.0.0.1", server.server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    header = bytes([0x81, 0x80 | 127]) + (20 * 1024 * 1024).to_bytes(8, "big") + os.urandom(4)
    writer.write(header + b"x" * 100)
    await writer.drain()
    async with asyncio.timeout(5):
        received = await reader.read()  # until the server closes
    writer.close()
    close_at = received.rfind(b"\x88")
    assert close_at >= 0, received
    assert received[close_at + 2 : close_at + 4] == (1009).to_bytes(2, "big")
