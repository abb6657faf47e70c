"""`approval.history` over real sockets: every closed exec approval is listed, newest first."""

from __future__ import annotations

from typing import Any

import pytest

from clawgate.client import GatewayCallError
from clawgate.gateway.settings import NodeSettings
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.conftest import Peer, PeerFactory
from tests.integration.node_helpers import ScriptedNode

# The exec approval tests' gateway (nodes may offer system.run) and node fixtures.
from tests.integration.test_exec_approvals import RUN, fleet, gateway, run, setup

__all__ = ["fleet", "gateway"]


async def history(peer: Peer, **params: Any) -> dict[str, Any]:
    answer: dict[str, Any] = await peer.client.call("approval.history", params)
    return answer


async def answer(approver: Peer, decision: str) -> str:
    """Answer the next approval request; return its id."""
    requested = (await approver.next_event("exec.approval.requested")).payload
    await approver.client.call(
        "exec.approval.resolve", {"id": requested["id"], "decision": decision}
    )
    approval_id: str = requested["id"]
    return approval_id


async def test_an_answered_approval_is_listed_with_its_decision(
    gateway: RunningGateway, client_factory: PeerFactory, fleet: list[ScriptedNode]
) -> None:
    caller, approver, node = await setup(gateway, client_factory, fleet)
    pending = run(caller, node, ["echo", "hi"])
    approval_id = await answer(approver, "allow-once")
    await pending
    [item] = (await history(approver))["items"]
    assert (item["id"], item["status"], item["decision"]) == (approval_id, "allowed", "allow-once")
    assert item["presentation"]["commandText"] == "echo hi"
    assert item["presentation"]["nodeId"] == node.node_id
    assert item["resolver"]["kind"] in ("device", "runtime")
    assert item["resolvedAtMs"] >= item["createdAtMs"]


async def test_an_expired_approval_is_listed_as_expired(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, fleet: list[ScriptedNode]
) -> None:
    gateway = await gateway_factory(nodes=NodeSettings(allow_commands=RUN, approval_timeout_ms=200))
    caller, approver, node = await setup(gateway, client_factory, fleet)
    with pytest.raises(GatewayCallError) as caught:
        await run(caller, node, ["sleep", "1"])
    [item] = (await history(approver))["items"]
    assert item["id"] == caught.value.details["approvalId"]
    assert (item["status"], item["reason"], item["resolver"]) == (
        "expired",
        "timeout",
        {"kind": "system"},
    )
    assert "decision" not in item


async def test_an_approval_whose_caller_left_is_listed_as_cancelled(
    gateway: RunningGateway, client_factory: PeerFactory, fleet: list[ScriptedNode]
) -> None:
    caller, approver, node = await setup(gateway, client_factory, fleet)
    run(caller, node, ["sleep", "1"])
    requested = (await approver.next_event("exec.approval.requested")).payload
    await caller.client.close()
    resolved = (await approver.next_event("exec.approval.resolved")).payload
    assert resolved["reason"] == "cancelled"
    [item] = (await history(approver))["items"]
    assert (item["id"], item["status"], item["reason"]) == (
        requested["id"],
        "cancelled",
        "run-aborted",
    )


async def test_history_pages_newest_first_by_cursor(
    gateway: RunningGateway, client_factory: PeerFactory, fleet: list[ScriptedNode]
) -> None:
    caller, approver, node = await setup(gateway, client_factory, fleet)
    answered = []
    for word in ("one", "two", "three"):
        pending = run(caller, node, ["echo", word])
        answered.append(await answer(approver, "deny"))
        with pytest.raises(GatewayCallError):
            await pending
    first = await history(approver, limit=2)
    assert [i["id"] for i in first["items"]] == answered[:0:-1]
    rest = await history(approver, limit=2, cursor=first["nextCursor"])
    assert [i["id"] for i in rest["items"]] == answered[:1]
    assert "nextCursor" not in rest


async def test_a_cursor_not_from_this_gateway_is_refused(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    approver = await client_factory(gateway, scopes=("operator.approvals",))
    with pytest.raises(GatewayCallError) as caught:
        await history(approver, cursor="bm90LWEtY3Vyc29y")
    assert caught.value.code == "INVALID_REQUEST"


async def test_plugin_approvals_have_no_history(
    gateway: RunningGateway, client_factory: PeerFactory, fleet: list[ScriptedNode]
) -> None:
    caller, approver, node = await setup(gateway, client_factory, fleet)
    pending = run(caller, node, ["echo", "hi"])
    await answer(approver, "allow-once")
    await pending
    assert await history(approver, kind="plugin") == {"items": []}
