"""Exec approvals over real sockets: system.run asks operators, who allow or deny (§13)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clawgate.client import GatewayCallError
from clawgate.gateway.settings import NodeSettings
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.conftest import Peer, PeerFactory
from tests.integration.node_helpers import ScriptedNode, connect_node

RUN = ("system.run",)


@pytest.fixture
async def fleet() -> AsyncIterator[list[ScriptedNode]]:
    started: list[ScriptedNode] = []
    yield started
    for node in started:
        await node.close()


@pytest.fixture
async def gateway(gateway_factory: GatewayFactory) -> RunningGateway:
    """A gateway that lets nodes offer system.run (behind approvals)."""
    return await gateway_factory(nodes=NodeSettings(allow_commands=RUN))


async def setup(
    gateway: RunningGateway, client_factory: PeerFactory, fleet: list[ScriptedNode]
) -> tuple[Peer, Peer, ScriptedNode]:
    caller = await client_factory(gateway, scopes=("operator.write",))
    approver = await client_factory(gateway, scopes=("operator.approvals",))
    node = await connect_node(gateway, commands=RUN)
    fleet.append(node)
    return caller, approver, node


def run(caller: Peer, node: ScriptedNode, argv: list[str]) -> asyncio.Task[Any]:
    body = {
        "nodeId": node.node_id,
        "command": "system.run",
        "params": {"command": argv, "cwd": "/tmp"},
        "idempotencyKey": str(uuid.uuid4()),
    }
    return asyncio.create_task(caller.client.call("node.invoke", body))


async def test_ask_sends_the_request_and_allow_once_runs_it(
    gateway: RunningGateway, client_factory: PeerFactory, fleet: list[ScriptedNode]
) -> None:
    caller, approver, node = await setup(gateway, client_factory, fleet)
    pending = run(caller, node, ["echo", "hi"])
    requested = (await approver.next_event("exec.approval.requested")).payload
    assert requested["nodeId"] == node.node_id and requested["argv"] == ["echo", "hi"]
    assert requested["cwd"] == "/tmp" and requested["request"]["commandArgv"] == ["echo", "hi"]
    assert requested["expiresAtMs"] > requested["createdAtMs"] and requested["requestedBy"]
    assert node.requests == []  # nothing ran yet
    listed = await approver.client.call("exec.approval.list")
    assert [a["id"] for a in listed["approvals"]] == [requested["id"]]
    await approver.client.call(
        "exec.approval.resolve", {"id": requested["id"], "decision": "allow-once"}
    )
    answer = await pending
    assert answer["ok"] and len(node.requests) == 1
    resolved = (await approver.next_event("exec.approval.resolved")).payload
    assert resolved["decision"] == "allow-once" and resolved["id"] == requested["id"]
    # Allowed once: the same argv asks again.
    again = run(caller, node, ["echo", "hi"])
    second = (await approver.next_event("exec.approval.requested")).payload
    await approver.client.call("exec.approval.resolve", {"id": second["id"], "decision": "deny"})
    with pytest.raises(GatewayCallError):
        await again


async def test_deny_refuses_and_nothing_runs(
    gateway: RunningGateway, client_factory: PeerFactory, fleet: list[ScriptedNode]
) -> None:
    caller, approver, node = await setup(gateway, client_factory, fleet)
    pending = run(caller, node, ["rm", "-rf", "/"])
    requested = (await approver.next_event("exec.approval.requested")).payload
    await approver.client.call("exec.approval.resolve", {"id": requested["id"], "decision": "deny"})
    with pytest.raises(GatewayCallError) as caught:
        await pending
    assert caught.value.detail_code == "APPROVAL_DENIED"
    assert node.requests == []


async def test_unanswered_request_expires_as_denied(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, fleet: list[ScriptedNode]
) -> None:
    gateway = await gateway_factory(nodes=NodeSettings(allow_commands=RUN, approval_timeout_ms=200))
    caller, approver, node = await setup(gateway, client_factory, fleet)
    with pytest.raises(GatewayCallError) as caught:
        await run(caller, node, ["sleep", "1"])
    assert caught.value.detail_code == "APPROVAL_EXPIRED"
    resolved = (await approver.next_event("exec.approval.resolved")).payload
    assert resolved["decision"] == "deny" and resolved["reason"] == "expired"
    assert node.requests == []
    with pytest.raises(GatewayCallError) as late:
        await approver.client.call(
            "exec.approval.resolve", {"id": resolved["id"], "decision": "allow-once"}
        )
    assert late.value.code == "APPROVAL_NOT_FOUND"


async def test_allow_always_lets_the_same_argv_run_without_asking(
    gateway: RunningGateway, client_factory: PeerFactory, fleet: list[ScriptedNode]
) -> None:
    caller, approver, node = await setup(gateway, client_factory, fleet)
    pending = run(caller, node, ["uname", "-a"])
    requested = (await approver.next_event("exec.approval.requested")).payload
    await approver.client.call(
        "exec.approval.resolve", {"id": requested["id"], "decision": "allow-always"}
    )
    await pending
    await run(caller, node, ["uname", "-a"])  # no approval asked this time
    assert len(node.requests) == 2
    admin = await client_factory(gateway, scopes=("operator.admin",))
    policy = await admin.client.call("exec.approvals.get", {"nodeId": node.node_id})
    assert policy["mode"] == "ask" and policy["allowlist"] == [["uname", "-a"]]
    # Another argv still asks.
    other = run(caller, node, ["uname", "-r"])
    requested = (await approver.next_event("exec.approval.requested")).payload
    assert requested["argv"] == ["uname", "-r"]
    await approver.client.call("exec.approval.resolve", {"id": requested["id"], "decision": "deny"})
    with pytest.raises(GatewayCallError):
        await other


async def test_allow_always_survives_a_restart(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    admin = await client_factory(gateway, scopes=("operator.admin",))
    await admin.client.call(
        "exec.approvals.set", {"nodeId": "n1", "mode": "allowlist", "allowlist": [["ls", "**"]]}
    )
    await admin.client.close()
    await gateway.restart()
    admin = await client_factory(gateway, scopes=("operator.admin",))
    policy = await admin.client.call("exec.approvals.get", {"nodeId": "n1"})
    assert policy == {
        "nodeId": "n1",
        "inherited": False,
        "mode": "allowlist",
        "allowlist": [["ls", "**"]],
        "updatedAtMs": policy["updatedAtMs"],
    }


async def test_deny_policy_refuses_without_asking(
    gateway: RunningGateway, client_factory: PeerFactory, fleet: list[ScriptedNode]
) -> None:
    caller, _, node = await setup(gateway, client_factory, fleet)
    admin = await client_factory(gateway, scopes=("operator.admin",))
    await admin.client.call("exec.approvals.set", {"nodeId": node.node_id, "mode": "deny"})
    with pytest.raises(GatewayCallError) as caught:
        await run(caller, node, ["true"])
    assert caught.value.detail_code == "APPROVAL_DENIED"
    assert node.requests == []


async def test_full_policy_runs_without_asking(
    gateway: RunningGateway, client_factory: PeerFactory, fleet: list[ScriptedNode]
) -> None:
    caller, _, node = await setup(gateway, client_factory, fleet)
    admin = await client_factory(gateway, scopes=("operator.admin",))
    await admin.client.call("exec.approvals.set", {"mode": "full"})  # the default policy
    assert (await run(caller, node, ["true"]))["ok"]


async def test_approvals_need_the_approvals_scope(
    gateway: RunningGateway, client_factory: PeerFactory, fleet: list[ScriptedNode]
) -> None:
    caller, approver, node = await setup(gateway, client_factory, fleet)
    reader = await client_factory(gateway, scopes=("operator.read",))
    pending = run(caller, node, ["id"])
    requested = (await approver.next_event("exec.approval.requested")).payload
    with pytest.raises(GatewayCallError) as caught:
        await reader.client.call(
            "exec.approval.resolve", {"id": requested["id"], "decision": "allow-once"}
        )
    assert caught.value.detail_code == "MISSING_SCOPE"
    with pytest.raises(GatewayCallError):
        await approver.client.call("exec.approvals.get", {})  # policies are admin's
    await approver.client.call("exec.approval.resolve", {"id": requested["id"], "decision": "deny"})
    with pytest.raises(GatewayCallError):
        await pending
    # The reader never saw the approval events.
    names = []
    while True:
        try:
            names.append((await reader.next_event("exec.approval.requested", timeout=0.2)).event)
        except TimeoutError:
            break
    assert names == []
