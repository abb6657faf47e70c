"""`environments.list` (OpenClaw's systems page): the gateway host and the nodes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from clawgate.client import GatewayCallError
from tests.conftest import RunningGateway
from tests.integration.conftest import PeerFactory
from tests.integration.node_helpers import ScriptedNode, connect_node


@pytest.fixture
async def nodes() -> AsyncIterator[list[ScriptedNode]]:
    """Nodes a test connected; closed before the gateway stops."""
    started: list[ScriptedNode] = []
    yield started
    for node in started:
        await node.close()


async def test_without_nodes_the_gateway_host_is_the_one_environment(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await client_factory(gateway, scopes=["operator.read"])
    result = await peer.client.call("environments.list", {"includeDesktopSetup": True})
    [host] = result["environments"]
    assert (host["id"], host["type"], host["status"]) == ("gateway", "local", "available")


async def test_a_connected_node_is_an_available_environment(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    peer = await client_factory(gateway, scopes=["operator.admin"])
    node = await connect_node(gateway, display_name="lab box")
    nodes.append(node)
    [_, env] = (await peer.client.call("environments.list", {}))["environments"]
    assert (env["id"], env["type"], env["label"]) == (f"node:{node.node_id}", "node", "lab box")
    assert env["status"] == "available" and env["platform"] == "linux"
    assert env["invocableCommands"] == ["device.info", "system.notify"]


async def test_a_paired_node_that_left_is_unavailable(
    gateway: RunningGateway, client_factory: PeerFactory, nodes: list[ScriptedNode]
) -> None:
    peer = await client_factory(gateway, scopes=["operator.admin"])
    node = await connect_node(gateway)
    await node.close()
    await asyncio.sleep(0.1)
    [_, env] = (await peer.client.call("environments.list", {}))["environments"]
    assert env["status"] == "unavailable" and "invocableCommands" not in env


async def test_the_profiles_projection_lists_no_environment(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await client_factory(gateway, scopes=["operator.read"])
    result = await peer.client.call("environments.list", {"projection": "profiles"})
    assert result == {"environments": []}


async def test_a_property_no_schema_defines_is_refused(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await client_factory(gateway, scopes=["operator.read"])
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call("environments.list", {"region": "eu"})
    assert caught.value.code == "INVALID_REQUEST"
