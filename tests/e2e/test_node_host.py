"""`clawgate node run` as a real subprocess against a real gateway: pair, approve, run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clawgate.client import GatewayCallError
from clawgate.gateway.settings import NodeSettings
from tests.conftest import GatewayFactory, RunningGateway
from tests.e2e.test_cli import CLAWGATE, env_for
from tests.integration.conftest import Peer, PeerFactory
from tests.integration.conftest import client_factory as client_factory  # the fixture

ALLOW = NodeSettings(allow_commands=("system.run", "system.which"))


@dataclass
class NodeProcess:
    """A running `clawgate node run` and the lines it printed."""

    process: asyncio.subprocess.Process
    home: Path
    lines: list[str]

    async def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = 20) -> str:
        async with asyncio.timeout(timeout):
            while True:
                found = next((line for line in self.lines if predicate(line)), None)
                if found is not None:
                    return found
                await asyncio.sleep(0.05)


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[NodeProcess] = []

    async def start(gateway: RunningGateway, node_toml: str = "") -> NodeProcess:
        home = tmp_path / f"nodehome{len(started)}"
        (home / "node").mkdir(parents=True, mode=0o700)
        (home / "node" / "node.toml").write_text(node_toml)
        process = await asyncio.create_subprocess_exec(
            *CLAWGATE,
            "node",
            "run",
            "--url",
            gateway.url,
            env=env_for(home, CLAWGATE_GATEWAY_TOKEN=gateway.token),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        node = NodeProcess(process, home, [])
        started.append(node)

        async def read() -> None:
            assert process.stdout is not None
            while line := await process.stdout.readline():
                node.lines.append(line.decode().rstrip())

        asyncio.get_running_loop().create_task(read())
        return node

    yield start
    for node in started:
        with contextlib.suppress(ProcessLookupError):
            node.process.terminate()
        await node.process.wait()


async def connected_node(admin: Peer, timeout: float = 20) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            listing = (await admin.client.call("node.list"))["nodes"]
            live = [n for n in listing if n["connected"]]
            if live:
                return dict(live[0])
            await asyncio.sleep(0.1)


async def run(admin: Peer, node_id: str, argv: list[str]) -> dict[str, Any]:
    body = {
        "nodeId": node_id,
        "command": "system.run",
        "params": {"command": argv},
        "idempotencyKey": str(uuid.uuid4()),
    }
    result: dict[str, Any] = await admin.client.call("node.invoke", body)
    return result


async def test_node_host_runs_a_real_command_after_approval(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, spawn: Callable[..., Any]
) -> None:
    gateway = await gateway_factory(nodes=ALLOW)
    admin = await client_factory(gateway, scopes=("operator.admin",))
    node = await spawn(gateway, '[exec]\nallow = [["echo", "**"]]\n')
    entry = await connected_node(admin)
    assert "system.run" in entry["commands"] and "device.info" in entry["commands"]
    pending = asyncio.create_task(run(admin, entry["nodeId"], ["echo", "hello", "node"]))
    requested = (await admin.next_event("exec.approval.requested", timeout=10)).payload
    await admin.client.call(
        "exec.approval.resolve", {"id": requested["id"], "decision": "allow-once"}
    )
    result = await pending
    assert result["payload"]["stdout"] == "hello node\n" and result["payload"]["exitCode"] == 0
    identity = node.home / "node" / "identity" / "device.json"
    assert stat.S_IMODE(os.stat(identity).st_mode) == 0o600
    assert not (node.home / "identity").exists()  # apart from the CLI's own identity


async def test_node_host_refuses_a_run_outside_its_own_allowlist(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, spawn: Callable[..., Any]
) -> None:
    gateway = await gateway_factory(nodes=ALLOW)
    admin = await client_factory(gateway, scopes=("operator.admin",))
    await admin.client.call("exec.approvals.set", {"mode": "full"})  # the gateway allows all
    await spawn(gateway, '[exec]\nallow = [["echo", "**"]]\n')
    entry = await connected_node(admin)
    with pytest.raises(GatewayCallError) as caught:
        await run(admin, entry["nodeId"], ["id"])
    assert caught.value.details["nodeError"]["code"] == "SYSTEM_RUN_DENIED"


async def test_node_host_prints_the_pairing_request_and_connects_once_approved(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, spawn: Callable[..., Any]
) -> None:
    gateway = await gateway_factory(auto_approve_loopback=False)
    admin = await client_factory(gateway, scopes=("operator.admin",))
    node = await spawn(gateway)
    line = await node.wait_for_line(lambda text: text.startswith("pairing required"))
    request_id = line.split("approve request ")[1].split(" ")[0]
    await admin.client.call("device.pair.approve", {"requestId": request_id})
    entry = await connected_node(admin, timeout=40)  # after its backoff
    assert entry["commands"] == []  # its commands wait for an admin too
    surface = (await admin.client.call("node.pair.list"))["pending"][0]
    await admin.client.call("node.pair.approve", {"requestId": surface["requestId"]})
    body = {"nodeId": entry["nodeId"], "command": "device.info", "idempotencyKey": "d1"}
    info = await admin.client.call("node.invoke", body)
    assert info["payload"]["platform"] == "linux"
