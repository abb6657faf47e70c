"""The control link survives what a hub should never send (control-plane spec §3.3)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import WSMsgType, web

from clawgate.cloud.settings import LinkSettings
from clawgate.protocol.control_link import MessageType, envelope
from clawgate.protocol.timefmt import format_time
from tests.conftest import GatewayFactory


class ScriptedHub:
    """A hub stand-in on loopback that acks the register, then sends what the test says."""

    def __init__(self) -> None:
        self.inbound: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.script: list[dict[str, Any]] = []
        self.sockets: set[web.WebSocketResponse] = set()

    async def close_all(self, _app: web.Application) -> None:
        """Close the links still open, so cleanup need not wait out aiohttp's 60 s grace."""
        for ws in list(self.sockets):
            await ws.close(code=1001, message=b"hub stopping")

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.add(ws)
        ack = {
            "sessionId": "s1",
            "protocolVersion": 1,
            "heartbeatIntervalMs": 20_000,
            "serverTime": format_time(time.time()),
            "hubVersion": "test",
        }
        first = await ws.receive()
        assert orjson.loads(first.data)["type"] == "SERVICE_REGISTER"
        await ws.send_str(orjson.dumps(envelope(MessageType.SERVICE_ACK, ack)).decode())
        for message in self.script:
            await ws.send_str(orjson.dumps(message).decode())
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await self.inbound.put(orjson.loads(message.data))
        self.sockets.discard(ws)
        return ws


@pytest.fixture
async def hub() -> AsyncIterator[tuple[ScriptedHub, str]]:
    scripted = ScriptedHub()
    app = web.Application()
    app.router.add_get("/v1/daemon", scripted.handle)
    app.on_shutdown.append(scripted.close_all)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield scripted, f"ws://127.0.0.1:{port}/v1/daemon"
    await runner.cleanup()


async def test_unprocessable_messages_are_ignored_and_the_link_stays_up(
    gateway_factory: GatewayFactory, socket_dir: Any, hub: tuple[ScriptedHub, str]
) -> None:
    scripted, url = hub
    bad_command = {"commandId": "c-null", "name": "a.b", "target": {"plugin": "p"}, "params": {}}
    bad_schema = {
        "id": "x",
        "version": "1.0.0",
        "manifest": {"id": "x", "version": "1.0.0", "name": "X", "config_schema": {"type": 7}},
    }
    scripted.script = [
        envelope(MessageType.COMMAND, {**bad_command, "issuedAt": None}),
        envelope(MessageType.DESIRED_STATE, {"revision": 1, "integrations": [bad_schema]}),
        {"type": "SOMETHING_NEW", "id": "u1", "ts": format_time(0), "payload": {}},
        envelope(MessageType.PING, {"nonce": "n1"}),
    ]
    gateway = await gateway_factory(
        ipc_socket=socket_dir / "gateway.sock", cloud=LinkSettings(url=url, api_key="k")
    )
    seen: dict[str, dict[str, Any]] = {}
    async with asyncio.timeout(10):
        while "PONG" not in seen or "COMMAND_ACK" not in seen:
            message = await scripted.inbound.get()
            seen[message["type"]] = message
    ack = seen["COMMAND_ACK"]["payload"]
    assert (ack["commandId"], ack["state"]) == ("c-null", "rejected")
    assert ack["error"]["code"] == "INVALID_PARAMS"
    assert seen["PONG"]["payload"] == {"nonce": "n1"}
    assert gateway.server.plugins is not None
    cloud = gateway.server.plugins.cloud
    assert cloud is not None and cloud.link.state.value == "connected"
    plugins = gateway.server.plugins
    assert plugins is not None
    async with asyncio.timeout(10):
        while (report := plugins.reconciler.last_report) is None or report["revision"] != 1:
            await asyncio.sleep(0.02)
    assert report["integrations"][0]["error"]["code"] == "INVALID_MANIFEST"
    assert "config_schema" in str(report["integrations"][0]["error"]["details"])
