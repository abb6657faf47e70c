"""Nodes over real sockets: pairing, listing, invokes and their errors (spec §10.5)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clawgate.client import GatewayCallError, GatewayHandshakeError
from clawgate.gateway.settings import NodeSettings
from clawgate.protocol.device_auth import DeviceIdentity
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.conftest import Peer, PeerFactory
from tests.integration.node_helpers import ScriptedNode, connect_node, silent

ALLOW_RUN = NodeSettings(allow_commands=("system.run", "system.which"))


@pytest.fixture
async def nodes() -> AsyncIterator[list[ScriptedNode]]:
    """Nodes a test connected; closed before the gateway stops."""
    started: list[ScriptedNode] = []
    yield started
    for node in started:
        await node.close()


async def node(gateway: RunningGateway, nodes: list[ScriptedNode], **kw: Any) -> ScriptedNode:
    started = await connect_node(gateway, **kw)
    nodes.append(started)
    return started


async def operator(client_factory: PeerFactory, gateway: RunningGateway, *scopes: str) -> Peer:
    return await client_factory(gateway, scopes=scopes or ("operator.admin",))


async def invoke(peer: Peer, node_id: str, command: str, params: Any = None, **kw: Any) -> Any:
    body = {"nodeId": node_id, "command": command, "idempotencyKey": str(uuid.uuid4()), **kw}
    if params is not None:
        body["params"] = params
    return await peer.client.call("node.invoke", body)


async def invoke_error(peer: Peer, *args: Any, **kw: Any) -> dict[str, Any]:
    with pytest.raises(GatewayCallError) as caught:
        await invoke(peer, *args, **kw)
    error = caught.value
    return {"code": error.code, "details": error.details or {}, "retryable": error.retryable}


async def pending_invokes(
    admin: Peer, n: ScriptedNode, count: int
) -> list[asyncio.Task[dict[str, Any]]]:
    """Start `count` invokes the (silent) node holds, and wait until it has them all."""
    waiting = [
        asyncio.create_task(invoke_error(admin, n.node_id, "device.info", timeoutMs=60_000))
        for _ in range(count)
    ]
    while len(n.requests) < count:
        await asyncio.sleep(0.02)
    return waiting


# -- pairing and listing --------------------------------------------------------------


async def test_loopback_node_is_paired_and_listed_with_its_effective_commands(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes, commands=("device.info", "system.run", "camera.snap"))
    assert n.client.hello is not None and n.client.hello["auth"]["role"] == "node"
    listing = await admin.client.call("node.list")
    [entry] = listing["nodes"]
    assert entry["nodeId"] == n.node_id and entry["connected"] and entry["paired"]
    # system.run and camera.snap are declared but not allowed by default.
    assert entry["commands"] == ["device.info"]
    assert entry["caps"] == ["system"] and entry["pathEnv"] == "/usr/bin:/bin"


async def test_path_env_is_shown_to_admins_only(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    reader = await operator(client_factory, gateway, "operator.read")
    await node(gateway, nodes)
    [entry] = (await reader.client.call("node.list"))["nodes"]
    assert "pathEnv" not in entry


async def test_node_has_a_presence_entry(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes)
    presence = await admin.client.call("system-presence")
    assert any(e.get("deviceId") == n.node_id and e["roles"] == ["node"] for e in presence)


async def test_disconnected_node_stays_listed_as_not_connected(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes)
    await n.close()
    await asyncio.sleep(0.1)
    [entry] = (await admin.client.call("node.list"))["nodes"]
    assert entry["nodeId"] == n.node_id and entry["connected"] is False and entry["paired"]


async def test_node_without_device_identity_is_refused(gateway: RunningGateway) -> None:
    from clawgate.client import GatewayClient

    client = GatewayClient(
        gateway.url, token=gateway.token, client_id="node-host", client_mode="node", role="node"
    )
    with pytest.raises(GatewayHandshakeError) as caught:
        await client.connect()
    assert caught.value.detail_code == "DEVICE_IDENTITY_REQUIRED"


async def test_remote_node_waits_for_pairing_then_for_its_command_surface(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    remote = await gateway_factory(auto_approve_loopback=False)
    admin = await operator(client_factory, remote)
    pairer = await operator(client_factory, remote, "operator.pairing")
    identity = DeviceIdentity.generate()
    with pytest.raises(GatewayHandshakeError) as caught:
        await connect_node(remote, identity=identity)
    request_id = caught.value.details["requestId"]
    # Pairing a node needs admin, not just the pairing scope.
    with pytest.raises(GatewayCallError) as refused:
        await pairer.client.call("device.pair.approve", {"requestId": request_id})
    assert refused.value.details["missingScope"] == "operator.admin"
    await admin.client.call("device.pair.approve", {"requestId": request_id})
    n = await node(remote, nodes, identity=identity)
    requested = await admin.next_event("node.pair.requested")
    assert requested.payload["nodeId"] == n.node_id
    assert requested.payload["commands"] == ["device.info", "system.notify"]
    [entry] = (await admin.client.call("node.list"))["nodes"]
    assert entry["commands"] == []  # declared but not yet approved
    surface_id = requested.payload["requestId"]
    with pytest.raises(GatewayCallError):
        await pairer.client.call("node.pair.approve", {"requestId": surface_id})
    await admin.client.call("node.pair.approve", {"requestId": surface_id})
    resolved = await admin.next_event("node.pair.resolved")
    assert resolved.payload["decision"] == "approved"
    answer = await invoke(admin, n.node_id, "device.info", {"x": 1})
    assert answer["payload"] == {"x": 1}


async def test_rejected_command_surface_leaves_commands_not_allowed(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    remote = await gateway_factory(auto_approve_loopback=False)
    admin = await operator(client_factory, remote)
    identity = DeviceIdentity.generate()
    with pytest.raises(GatewayHandshakeError) as caught:
        await connect_node(remote, identity=identity)
    await admin.client.call("device.pair.approve", {"requestId": caught.value.details["requestId"]})
    n = await node(remote, nodes, identity=identity)
    pending = (await admin.client.call("node.pair.list"))["pending"]
    await admin.client.call("node.pair.reject", {"requestId": pending[0]["requestId"]})
    error = await invoke_error(admin, n.node_id, "device.info")
    assert error["details"]["code"] == "COMMAND_NOT_ALLOWED"


async def test_a_changed_command_list_asks_again(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    remote = await gateway_factory(auto_approve_loopback=False)
    admin = await operator(client_factory, remote)
    identity = DeviceIdentity.generate()
    with pytest.raises(GatewayHandshakeError) as caught:
        await connect_node(remote, identity=identity)
    await admin.client.call("device.pair.approve", {"requestId": caught.value.details["requestId"]})
    first = await node(remote, nodes, identity=identity, commands=("device.info",))
    surface = (await admin.next_event("node.pair.requested")).payload
    await admin.client.call("node.pair.approve", {"requestId": surface["requestId"]})
    await first.close()
    second = await node(remote, nodes, identity=identity, commands=("device.info", "device.status"))
    again = (await admin.next_event("node.pair.requested")).payload
    assert again["commands"] == ["device.info", "device.status"] and again["isRepair"]
    # Until then the approved part keeps working.
    assert (await invoke(admin, second.node_id, "device.info"))["ok"]
    error = await invoke_error(admin, second.node_id, "device.status")
    assert error["details"]["code"] == "COMMAND_NOT_ALLOWED"


async def test_surface_approval_survives_a_restart(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    identity = DeviceIdentity.generate()
    first = await node(gateway, nodes, identity=identity)
    admin = await operator(client_factory, gateway)
    await admin.client.call("node.rename", {"nodeId": first.node_id, "displayName": "lab box"})
    await first.close()
    await admin.client.close()
    await gateway.restart()
    admin = await operator(client_factory, gateway)
    [entry] = (await admin.client.call("node.list"))["nodes"]
    assert entry["displayName"] == "lab box" and entry["commands"] == [
        "device.info",
        "system.notify",
    ]


async def test_removing_the_device_forgets_its_approved_commands(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    gateway = await gateway_factory()
    admin = await operator(client_factory, gateway)
    identity = DeviceIdentity.generate()
    first = await node(gateway, nodes, identity=identity)
    await admin.client.call("device.pair.remove", {"deviceId": first.node_id})
    assert (await admin.client.call("node.pair.list"))["paired"] == []
    async with asyncio.timeout(5):
        while (await admin.client.call("node.list"))["nodes"]:  # until its socket closed
            await asyncio.sleep(0.05)


# -- node methods ---------------------------------------------------------------------


async def test_node_event_is_acknowledged_as_not_handled(
    gateway: RunningGateway, nodes: list[ScriptedNode]
) -> None:
    n = await node(gateway, nodes)
    answer = await n.client.call("node.event", {"event": "node.host.stats", "payloadJSON": "{}"})
    assert answer == {"ok": True, "event": "node.host.stats", "handled": False}


async def test_a_periodic_node_event_is_logged_at_info_once(
    gateway: RunningGateway, nodes: list[ScriptedNode], caplog: pytest.LogCaptureFixture
) -> None:
    n = await node(gateway, nodes)
    caplog.set_level(logging.DEBUG, logger="clawgate.gateway.methods.nodes")
    for _ in range(3):
        await n.client.call("node.event", {"event": "node.host.stats", "payloadJSON": "{}"})
    levels = [r.levelno for r in caplog.records if "node.host.stats" in r.getMessage()]
    assert levels == [logging.INFO, logging.DEBUG, logging.DEBUG]


async def test_inventory_updates_are_kept_and_described(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes)
    inventory = {
        "protocolFeatures": ["node-worker-supervisor-v6"],
        "workerHost": {"enabled": False},
    }
    for _ in range(12):  # more than the flood guard's ten: none of these is refused
        await n.client.call("node.runnerInventory.update", inventory)
        await n.client.call("node.skills.update", {"skills": []})
        await n.client.call("node.pluginTools.update", {"tools": []})
    described = await admin.client.call("node.describe", {"nodeId": n.node_id})
    assert described["runnerInventory"] == inventory and described["skills"] == []
    assert n.client.connected


async def test_operator_cannot_call_node_methods(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    admin = await operator(client_factory, gateway)
    with pytest.raises(GatewayCallError) as caught:
        await admin.client.call("node.event", {"event": "x"})
    assert caught.value.message == "unauthorized role: operator"


async def test_describe_of_an_unknown_node_is_invalid(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    admin = await operator(client_factory, gateway)
    with pytest.raises(GatewayCallError) as caught:
        await admin.client.call("node.describe", {"nodeId": "nope"})
    assert caught.value.code == "INVALID_REQUEST"


# -- invokes --------------------------------------------------------------------------


async def test_invoke_reaches_the_node_and_returns_payload_and_payload_json(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes)
    answer = await invoke(admin, n.node_id, "device.info", {"a": [1, 2]}, timeoutMs=5000)
    assert answer == {
        "ok": True,
        "nodeId": n.node_id,
        "command": "device.info",
        "payload": {"a": [1, 2]},
        "payloadJSON": '{"a":[1,2]}',
    }
    [request] = n.requests
    assert request["paramsJSON"] == '{"a":[1,2]}' and request["timeoutMs"] == 5000
    assert set(request) == {"id", "nodeId", "command", "paramsJSON", "timeoutMs", "idempotencyKey"}


async def test_invoke_of_an_unknown_node_is_not_connected(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    admin = await operator(client_factory, gateway)
    error = await invoke_error(admin, "f" * 64, "device.info")
    assert error["code"] == "UNAVAILABLE" and error["details"]["code"] == "NOT_CONNECTED"


async def test_invoke_of_an_offline_node_is_not_connected(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes)
    await n.close()
    await asyncio.sleep(0.1)
    error = await invoke_error(admin, n.node_id, "device.info")
    assert error["details"]["code"] == "NOT_CONNECTED"


async def test_undeclared_or_dangerous_command_is_not_allowed(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes, commands=("device.info", "system.run"))
    for command in ("camera.snap", "system.run"):
        error = await invoke_error(admin, n.node_id, command)
        assert error["code"] == "INVALID_REQUEST"
        assert error["details"]["code"] == "COMMAND_NOT_ALLOWED"
    assert n.requests == []


async def test_deny_commands_wins_over_the_default_allowlist(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    gateway = await gateway_factory(nodes=NodeSettings(deny_commands=("device.*",)))
    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes)
    error = await invoke_error(admin, n.node_id, "device.info")
    assert error["details"]["code"] == "COMMAND_NOT_ALLOWED"


async def test_silent_node_times_out_and_is_told_to_cancel(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes, answer=silent)
    error = await invoke_error(admin, n.node_id, "device.info", timeoutMs=100)
    assert error["code"] == "UNAVAILABLE" and error["details"]["code"] == "TIMEOUT"
    await asyncio.sleep(0.1)
    [cancel] = n.cancels
    assert cancel["id"] == n.requests[0]["id"] == cancel["invokeId"]


async def test_late_result_is_acknowledged_and_dropped(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes, answer=silent)
    await invoke_error(admin, n.node_id, "device.info", timeoutMs=50)
    request = n.requests[0]
    late = {"id": request["id"], "nodeId": n.node_id, "ok": True, "payloadJSON": "1"}
    assert await n.client.call("node.invoke.result", late) == {"ok": True}


async def test_result_for_an_id_never_issued_is_invalid(
    gateway: RunningGateway, nodes: list[ScriptedNode]
) -> None:
    n = await node(gateway, nodes)
    forged = {"id": str(uuid.uuid4()), "nodeId": n.node_id, "ok": True}
    with pytest.raises(GatewayCallError) as caught:
        await n.client.call("node.invoke.result", forged)
    assert caught.value.code == "INVALID_REQUEST"


async def test_result_naming_another_node_is_invalid(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    target = await node(gateway, nodes, answer=silent)
    other = await node(gateway, nodes)
    waiting = asyncio.create_task(invoke(admin, target.node_id, "device.info", timeoutMs=2000))
    await asyncio.sleep(0.2)
    request = target.requests[0]
    with pytest.raises(GatewayCallError):
        await other.client.call(
            "node.invoke.result", {"id": request["id"], "nodeId": target.node_id, "ok": True}
        )
    with pytest.raises(GatewayCallError):
        await waiting


async def test_node_error_carries_its_code_and_openclaw_node_error(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    async def failing(request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": False, "error": {"code": "LOCATION_UNAVAILABLE", "message": "no fix"}}

    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes, answer=failing, commands=("location.get",))
    error = await invoke_error(admin, n.node_id, "location.get")
    assert error["code"] == "UNAVAILABLE"
    assert error["details"]["code"] == "LOCATION_UNAVAILABLE"
    assert error["details"]["nodeError"] == {"code": "LOCATION_UNAVAILABLE", "message": "no fix"}


async def test_node_error_without_a_code_is_node_error(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    async def failing(request: dict[str, Any]) -> dict[str, Any]:
        return {"ok": False}

    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes, answer=failing)
    error = await invoke_error(admin, n.node_id, "device.info")
    assert error["details"]["code"] == "NODE_ERROR"


async def test_disconnect_fails_every_pending_invoke_at_once(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes, answer=silent)
    waiting = await pending_invokes(admin, n, 5)
    await n.close()
    errors = await asyncio.wait_for(asyncio.gather(*waiting), 5)
    assert {e["details"]["code"] for e in errors} == {"NODE_DISCONNECTED"}


async def test_more_than_64_pending_is_retryable_unavailable(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes, answer=silent)
    waiting = await pending_invokes(admin, n, 64)
    error = await invoke_error(admin, n.node_id, "device.info")
    assert error["code"] == "UNAVAILABLE" and error["retryable"] is True
    await n.close()
    await asyncio.gather(*waiting)


async def test_retry_with_the_same_key_returns_the_first_outcome_and_runs_once(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    release = asyncio.Event()

    async def slow(request: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {"ok": True, "payload": {"n": len(n.requests)}}

    admin = await operator(client_factory, gateway)
    n = await node(gateway, nodes, answer=slow)
    body = {"nodeId": n.node_id, "command": "device.info", "idempotencyKey": "same-key"}
    first = asyncio.create_task(admin.client.call("node.invoke", body))
    second = asyncio.create_task(admin.client.call("node.invoke", body))
    await asyncio.sleep(0.2)
    release.set()
    assert await first == await second
    assert await admin.client.call("node.invoke", body) == await first
    assert len(n.requests) == 1


async def test_newest_connection_of_a_node_gets_the_invokes(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    identity = DeviceIdentity.generate()
    older = await node(gateway, nodes, identity=identity)
    newer = await node(gateway, nodes, identity=identity)
    await invoke(admin, identity.device_id, "device.info")
    assert len(newer.requests) == 1 and older.requests == []


async def test_concurrent_invokes_to_20_nodes(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    admin = await operator(client_factory, gateway)
    fleet = [await node(gateway, nodes) for _ in range(20)]
    answers = await asyncio.gather(
        *(
            invoke(admin, n.node_id, "device.info", {"i": i})
            for i, n in enumerate(fleet)
            for _ in range(3)
        )
    )
    assert [a["payload"]["i"] for a in answers] == [i for i in range(20) for _ in range(3)]
    assert all(len(n.requests) == 3 for n in fleet)
