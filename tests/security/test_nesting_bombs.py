"""Nesting bombs at every inbound boundary (issue 17 point 4)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from clawgate.config import OpenAIHttpSection
from clawgate.hub import HubServer
from clawgate.ipc import IpcServer
from clawgate.protocol.control_link import MessageType, envelope
from clawgate.protocol.ipc.frames import encode_request
from clawgate.protocol.ipc.registration import register_params
from clawgate.protocol.limits import MAX_NESTING_DEPTH
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.hub_daemon import SimDaemon
from tests.integration.hub.conftest import RunningHub, hub_settings
from tests.integration.test_canvas import start_canvas
from tests.integration.test_hooks_http import hooks_gateway, post
from tests.wire import RawPeer, open_peer, request


def deep(levels: int) -> Any:
    """Return a list nested `levels` deep (1 is `[]`)."""
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def deep_text(levels: int) -> str:
    return "[" * levels + "]" * levels


async def admin_peer(session: aiohttp.ClientSession, gateway: RunningGateway) -> RawPeer:
    peer = await open_peer(session, gateway.url)
    await peer.authenticate(gateway.token)
    return peer


async def ask(peer: RawPeer, method: str, params: Any, frame_id: str) -> dict[str, Any]:
    await peer.send(request(method, params, frame_id))
    return await peer.response(frame_id, timeout=60)


# -- the WebSocket API ---------------------------------------------------------------------


@pytest.mark.parametrize("levels", [MAX_NESTING_DEPTH + 1, 1000, 5000])
async def test_deep_ws_params_get_invalid_request_and_the_socket_stays(
    gateway: RunningGateway, session: aiohttp.ClientSession, levels: int
) -> None:
    peer = await admin_peer(session, gateway)
    frame = '{"type":"req","id":"deep","method":"health","params":{"x":' + deep_text(levels) + "}}"
    await peer.send(frame)
    answer = await peer.response(timeout=60)
    assert answer["error"]["code"] == "INVALID_REQUEST"
    assert f"deeper than {MAX_NESTING_DEPTH}" in answer["error"]["message"]
    assert (await ask(peer, "health", {}, "after"))["ok"] is True


async def test_nesting_at_the_limit_is_accepted(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    peer = await admin_peer(session, gateway)
    # The frame object is level 1 and params level 2: 62 more levels reach 64 exactly.
    frame = orjson.dumps(
        {"type": "req", "id": "edge", "method": "health", "params": {"x": deep(62)}}
    ).decode()
    await peer.send(frame)
    edge = await peer.response("edge", timeout=60)
    assert "deeper than" not in str(edge)


# -- config.set / config.patch ---------------------------------------------------------------


@pytest.fixture
async def configured(gateway_factory: GatewayFactory, tmp_path: Path) -> RunningGateway:
    config_path = tmp_path / "config.toml"
    config_path.write_text("[gateway]\nport = 18789\n")
    config_path.chmod(0o600)
    return await gateway_factory(config_path=config_path)


@pytest.mark.parametrize("levels", [100, 1000, 100_000])
async def test_a_deep_config_patch_is_refused_and_healthz_keeps_answering(
    configured: RunningGateway, session: aiohttp.ClientSession, levels: int
) -> None:
    peer = await admin_peer(session, configured)
    raw = '{"gateway":{"allowed_origins":' + deep_text(levels) + "}}"
    pending = asyncio.create_task(ask(peer, "config.patch", {"raw": raw}, "patch"))
    async with session.get(configured.http_url + "/healthz") as health:
        assert health.status == 200
    answer = await pending
    assert answer["error"]["code"] == "INVALID_REQUEST"
    assert "deeper than" in answer["error"]["message"]


@pytest.mark.parametrize("levels", [100, 1000])
async def test_a_deep_config_set_is_refused(
    configured: RunningGateway, session: aiohttp.ClientSession, levels: int
) -> None:
    peer = await admin_peer(session, configured)
    raw = "[gateway]\nallowed_origins = " + deep_text(levels) + "\n"
    answer = await ask(peer, "config.set", {"raw": raw}, "set")
    assert answer["error"]["code"] == "INVALID_REQUEST"
    assert "deeper than" in answer["error"]["message"]
    assert "port = 18789" in (configured.server.settings.config_path or Path()).read_text()


# -- plugin IPC ------------------------------------------------------------------------------


@pytest.fixture
async def ipc_server(tmp_path: Path) -> AsyncIterator[IpcServer]:
    socket_dir = Path("/tmp") / f"cg-sec-{id(tmp_path)}"
    socket_dir.mkdir(mode=0o700, exist_ok=True)
    server = IpcServer(socket_dir / "gw.sock", daemon_id="d", daemon_version="0.1.0")
    await server.start()
    yield server
    await server.stop(grace_ms=0)
    (socket_dir / "gw.sock").unlink(missing_ok=True)
    socket_dir.rmdir()


@pytest.mark.parametrize("levels", [MAX_NESTING_DEPTH + 1, 5000])
async def test_a_deep_ipc_frame_gets_invalid_frame(ipc_server: IpcServer, levels: int) -> None:
    reader, writer = await asyncio.open_unix_connection(str(ipc_server.socket_path))
    try:
        params = register_params(name="raw", version="1.0", capabilities=[])
        writer.write(encode_request("reg", "register", params))
        assert orjson.loads(await asyncio.wait_for(reader.readline(), 30))["ok"] is True
        writer.write(
            b'{"type":"req","id":"q","method":"m","params":{"x":'
            + deep_text(levels).encode()
            + b"}}\n"
        )
        await writer.drain()
        answer = orjson.loads(await asyncio.wait_for(reader.readline(), 30))
        assert answer["error"]["code"] == "INVALID_FRAME"
        assert "deeper than" in answer["error"]["message"]
    finally:
        writer.close()


# -- the hub's HTTP API ----------------------------------------------------------------------


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubServer]:
    home = tmp_path / "hub"
    home.mkdir(mode=0o700)
    server = HubServer(hub_settings(home))
    await server.start()
    yield server
    await server.stop()


@pytest.mark.parametrize("levels", [MAX_NESTING_DEPTH + 1, 252, 5000])
async def test_a_deep_hub_command_is_refused_before_201(
    hub: HubServer, session: aiohttp.ClientSession, levels: int
) -> None:
    headers = {"Authorization": f"Bearer {hub.settings.admin_token}"}
    body = (
        '{"name":"x","target":{"kind":"gateway"},"params":{"x":' + deep_text(levels) + "}}"
    ).encode()
    status, answer = await _hub_call(
        session, hub, "POST", "/v1/daemons/some-daemon/commands", body, headers
    )
    assert status == 400, answer
    assert answer["error"]["code"] == "INVALID_REQUEST"


async def _hub_call(
    session: aiohttp.ClientSession,
    hub: HubServer,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
) -> tuple[int, Any]:
    async with session.request(method, hub.url + path, data=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


# -- the daemon's link to the hub --------------------------------------------------------------


@pytest.mark.parametrize("levels", [MAX_NESTING_DEPTH + 1, 300])
async def test_a_deep_link_message_closes_the_daemons_link_4400(
    hub: HubServer, session: aiohttp.ClientSession, tmp_path: Path, levels: int
) -> None:
    key = await RunningHub(hub, session, tmp_path).new_key()
    daemon = SimDaemon(hub.link_url, key)
    assert await daemon.connect() is not None
    # `result` takes any JSON: past 254 levels the hub's store could not even re-encode it.
    message = envelope(MessageType.COMMAND_ACK, {"commandId": "c", "result": "DEEP"})
    text = orjson.dumps(message).decode().replace('"DEEP"', deep_text(levels))
    await daemon.send_raw(text)
    try:
        assert await daemon.closed() == 4400
    finally:
        await daemon.close()


# -- the gateway's HTTP surfaces ------------------------------------------------------------------


@pytest.mark.parametrize("levels", [MAX_NESTING_DEPTH + 1, 1000, 5000])
async def test_a_deep_openai_body_gets_400_naming_the_limit(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession, levels: int
) -> None:
    gateway = await gateway_factory(openai_http=OpenAIHttpSection(enabled=True))
    body = '{"model":"clawgate","messages":[{"role":"user","content":' + deep_text(levels) + "}]}"
    headers = {"Authorization": f"Bearer {gateway.token}"}
    url = gateway.http_url + "/v1/chat/completions"
    async with session.post(url, data=body.encode(), headers=headers) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert f"deeper than {MAX_NESTING_DEPTH}" in error["message"]


# A mapping's template renders whatever the body holds: 1000 levels used to end in a 500.
@pytest.mark.parametrize("levels", [MAX_NESTING_DEPTH + 1, 1000, 5000])
async def test_a_deep_webhook_body_gets_400_naming_the_limit(
    gateway_factory: GatewayFactory, levels: int
) -> None:
    gateway = await hooks_gateway(gateway_factory)
    raw = '{"from":"a","subject":' + deep_text(levels) + "}"
    status, _, body = await post(gateway, "/hooks/mail", raw=raw.encode())
    assert status == 400 and body["error"]["code"] == "INVALID_REQUEST"
    assert f"deeper than {MAX_NESTING_DEPTH}" in body["error"]["message"]


# json.loads recursed on the C stack: 8 KiB of brackets raised RecursionError in the handler.
@pytest.mark.parametrize("levels", [MAX_NESTING_DEPTH + 1, 4000])
async def test_a_deep_canvas_auth_frame_is_closed_1008_naming_the_limit(
    gateway_factory: GatewayFactory,
    tmp_path: Path,
    session: aiohttp.ClientSession,
    levels: int,
) -> None:
    canvas = await start_canvas(gateway_factory, tmp_path)
    ws = await session.ws_connect(canvas.ws_url, autoclose=False)
    await ws.send_str('{"type":"auth","page":' + deep_text(levels) + "}")
    message = await ws.receive(timeout=30)
    assert message.data == 1008 and f"deeper than {MAX_NESTING_DEPTH}" in message.extra
