"""The plugin backend end to end: the echo-agent example runs as a real subprocess."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from clawgate.config import AgentSection
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.chat_helpers import admin_peer, chat_events
from tests.integration.conftest import PeerFactory

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="cga"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def host(gateway_factory: GatewayFactory, socket_dir: Path) -> RunningGateway:
    agent = AgentSection(backend="plugin", timeout_s=20)  # type: ignore[arg-type]
    return await gateway_factory(ipc_socket=socket_dir / "gateway.sock", agent=agent)


@pytest.fixture
async def plugin(host: RunningGateway, socket_dir: Path) -> AsyncIterator[None]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.echo_agent",
        "--socket",
        str(socket_dir / "gateway.sock"),
        "--delay",
        "0.1",
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    registry = host.server.plugins.registry  # type: ignore[union-attr]
    async with asyncio.timeout(15):
        while registry.for_capability("agent") is None:
            await asyncio.sleep(0.05)
    yield
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), 10)


async def test_without_a_plugin_the_run_fails_readably(
    host: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await admin_peer(client_factory, host)
    await peer.client.call("chat.send", {"sessionKey": "p", "message": "hi", "idempotencyKey": "n"})
    events = await chat_events(peer, "n")
    assert events[-1]["state"] == "error"
    assert 'no plugin with capability "agent"' in events[-1]["errorMessage"]


async def test_plugin_streams_the_reply_and_sees_history(
    host: RunningGateway, client_factory: PeerFactory, plugin: None
) -> None:
    peer = await admin_peer(client_factory, host)
    _, final = await peer.client.call_streaming(
        "agent", {"message": "ping pong", "sessionKey": "p", "idempotencyKey": "p1"}
    )
    response = await asyncio.wait_for(final, 15)
    assert response.ok, response.error
    assert response.payload["result"]["payloads"] == [{"text": "echo: ping pong"}]
    assert response.payload["result"]["meta"]["usage"] == {"turns": 1}
    _, final = await peer.client.call_streaming(
        "agent", {"message": "again", "sessionKey": "p", "idempotencyKey": "p2"}
    )
    response = await asyncio.wait_for(final, 15)
    assert response.payload["result"]["meta"]["usage"] == {"turns": 2}  # history arrived


async def test_abort_reaches_the_plugin(
    host: RunningGateway, client_factory: PeerFactory, plugin: None
) -> None:
    peer = await admin_peer(client_factory, host)
    words = " ".join(f"w{i}" for i in range(100))
    await peer.client.call(
        "chat.send", {"sessionKey": "p", "message": words, "idempotencyKey": "a"}
    )
    await peer.next_event("chat")
    await peer.client.call("chat.abort", {"sessionKey": "p"})
    events = await chat_events(peer, "a")
    assert events[-1]["state"] == "aborted"
    # The plugin stopped too: its next run on the session starts promptly and completes.
    await peer.client.call("chat.send", {"sessionKey": "p", "message": "ok", "idempotencyKey": "b"})
    events = await chat_events(peer, "b", timeout=10)
    assert events[-1]["message"]["content"][0]["text"] == "echo: ok"
