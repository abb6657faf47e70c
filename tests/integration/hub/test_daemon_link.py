"""The daemon's control link against the real hub: commands, desired state, reports, faults."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from examples.dir_integrations import DirIntegrations, build_plugin

from clawgate.client import GatewayClient
from clawgate.cloud.settings import LinkSettings
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.hub.conftest import HubFactory, RunningHub
from tests.integration.plugin_helpers import dir_plugin, running

WAIT = 10.0
SECRET = "hub-delivered-secret-5150"


async def eventually(check: Callable[[], Any], timeout: float = WAIT) -> Any:
    """Poll a sync or async ``check`` until it returns something truthy."""
    async with asyncio.timeout(timeout):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(0.05)


async def linked_gateway(
    gateway_factory: GatewayFactory, hub: RunningHub, socket_dir: Path, key: str | None = None
) -> RunningGateway:
    settings = LinkSettings(url=hub.link_url, api_key=key or await hub.new_key())
    return await gateway_factory(ipc_socket=socket_dir / "gateway.sock", cloud=settings)


def daemon_id(gateway: RunningGateway) -> str:
    assert gateway.server.store is not None
    return gateway.server.store.daemon_id


async def connected(hub: RunningHub, gateway: RunningGateway) -> dict[str, Any]:
    async def check() -> Any:
        status, body = await hub.call("GET", f"/v1/daemons/{daemon_id(gateway)}")
        return body if status == 200 and body.get("connected") else None

    return dict(await eventually(check))


def manifest(item_id: str, depends_on: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "id": item_id,
        "version": "1.0.0",
        "name": item_id.title(),
        "depends_on": list(depends_on),
        "config_schema": {
            "type": "object",
            "properties": {
                "greeting": {"type": "string"},
                "token": {"type": "string", "x-secret": True},
            },
        },
        "commands": [{"name": "dir.touch"}],
    }


def desired(*items: tuple[str, tuple[str, ...]], greeting: str = "hi") -> dict[str, Any]:
    return {
        "integrations": [
            {
                "id": item_id,
                "version": "1.0.0",
                "enabled": True,
                "manifest": manifest(item_id, deps),
                "config": {"greeting": f"{greeting} {item_id}"},
                "secrets": {"token": SECRET},
            }
            for item_id, deps in items
        ]
    }


@pytest.fixture
async def hub(hub_factory: HubFactory) -> RunningHub:
    return await hub_factory()


async def test_the_daemon_registers_and_reports_its_link_state(
    gateway_factory: GatewayFactory, hub: RunningHub, socket_dir: Path, tmp_path: Path
) -> None:
    gateway = await linked_gateway(gateway_factory, hub, socket_dir)
    record = await connected(hub, gateway)
    assert record["daemonId"] == daemon_id(gateway)
    async with (
        running(dir_plugin(tmp_path / "root"), socket_dir / "gateway.sock") as plugin,
        GatewayClient(gateway.url, token=gateway.token) as client,
    ):
        status = await plugin.call("status", {})
        assert status["cloud"]["state"] == "connected" and status["cloud"]["connected"] is True
        assert (await client.call("cloud.status"))["state"] == "connected"
        assert plugin.registration is not None and plugin.registration["cloudConnected"] is True
    refused = await client_refused_apply(gateway)
    assert "hub manages" in refused


async def client_refused_apply(gateway: RunningGateway) -> str:
    async with GatewayClient(gateway.url, token=gateway.token) as client:
        try:
            await client.call("integrations.apply", {"integrations": []})
        except Exception as exc:  # the refusal is the point
            return str(exc)
    raise AssertionError("integrations.apply was accepted under a hub")


async def test_desired_state_from_the_hub_converges_and_is_reported(
    gateway_factory: GatewayFactory, hub: RunningHub, socket_dir: Path, tmp_path: Path
) -> None:
    gateway = await linked_gateway(gateway_factory, hub, socket_dir)
    daemon = daemon_id(gateway)
    root = tmp_path / "root"
    state = desired(("base", ()), ("crm", ("base",)), ("mail", ()))
    status, body = await hub.call("PUT", f"/v1/daemons/{daemon}/desired-state", state)
    assert status == 200, body
    async with running(dir_plugin(root), socket_dir / "gateway.sock"):

        async def converged() -> Any:
            _, record = await hub.call("GET", f"/v1/daemons/{daemon}")
            return record.get("converged") and record.get("lastAppliedRevision") == 1

        await eventually(converged)
    assert {p.name for p in root.iterdir() if p.is_dir()} == {"base", "crm", "mail"}
    _, reports = await hub.call("GET", f"/v1/daemons/{daemon}/reports?limit=1")
    latest = reports["reports"][0]
    report = latest.get("report", latest)
    assert report["converged"] is True
    assert {row["id"]: row["status"] for row in report["integrations"]} == {
        "base": "active",
        "crm": "active",
        "mail": "active",
    }
    await gateway.server.stop()
    assert SECRET.encode() not in (gateway.home / "state.db").read_bytes()


async def test_commands_are_executed_once_and_acked_through_the_hub(
    gateway_factory: GatewayFactory, hub: RunningHub, socket_dir: Path, tmp_path: Path
) -> None:
    gateway = await linked_gateway(gateway_factory, hub, socket_dir)
    daemon = daemon_id(gateway)
    await connected(hub, gateway)
    root = tmp_path / "root"
    body = {"name": "dir.touch", "target": {"plugin": "dir-integrations"}, "params": {"name": "a"}}
    status, queued = await hub.call("POST", f"/v1/daemons/{daemon}/commands?wait=0.5", body)
    assert status == 202 and queued["state"] == "queued"
    async with running(dir_plugin(root), socket_dir / "gateway.sock"):
        status, done = await hub.call("GET", f"/v1/commands/{queued['commandId']}?wait=5")
        assert done["state"] == "done", done
        status, live = await hub.call(
            "POST", f"/v1/daemons/{daemon}/commands?wait=5", {**body, "params": {"name": "b"}}
        )
        assert status == 200 and live["state"] == "done"
    assert (root / "touched" / "a").exists() and (root / "touched" / "b").exists()
    executed = (root / ".executed").read_text().splitlines()
    assert len(executed) == 2


async def test_a_wrong_key_stops_retrying_with_login_required(
    gateway_factory: GatewayFactory, hub: RunningHub, socket_dir: Path
) -> None:
    gateway = await linked_gateway(gateway_factory, hub, socket_dir, key="cgk_not-a-real-key")
    assert gateway.server.plugins is not None
    cloud = gateway.server.plugins.cloud
    assert cloud is not None
    await eventually(lambda: cloud.link.state.value == "login_required")
    await asyncio.sleep(0.5)
    assert cloud.link.state.value == "login_required"
    assert "api key" in (cloud.link.last_error or "")


async def test_the_link_comes_back_after_the_hub_restarts(
    gateway_factory: GatewayFactory, hub_factory: HubFactory, socket_dir: Path, tmp_path: Path
) -> None:
    hub = await hub_factory(port=0)
    gateway = await linked_gateway(gateway_factory, hub, socket_dir)
    await connected(hub, gateway)
    port = hub.server.port
    await hub.server.stop()
    assert gateway.server.plugins is not None
    cloud = gateway.server.plugins.cloud
    assert cloud is not None
    await eventually(lambda: cloud.link.state.value in ("backoff", "connecting"))
    again = await hub_factory(home=hub.home, port=port)
    await connected(again, gateway)


async def test_secrets_come_back_from_the_hub_after_a_daemon_restart(
    gateway_factory: GatewayFactory, hub: RunningHub, socket_dir: Path, tmp_path: Path
) -> None:
    gateway = await linked_gateway(gateway_factory, hub, socket_dir)
    daemon = daemon_id(gateway)
    root = tmp_path / "root"
    await hub.call("PUT", f"/v1/daemons/{daemon}/desired-state", desired(("vault", ())))
    first = DirIntegrations(root)
    async with running(build_plugin(first, backoff_initial=0.05), socket_dir / "gateway.sock"):
        await eventually(lambda: first.secrets_for("vault") == {"token": SECRET})
    await gateway.restart()  # the daemon forgets every secret value
    again = DirIntegrations(root)  # and so does a restarted plugin
    async with running(build_plugin(again, backoff_initial=0.05), socket_dir / "gateway.sock"):
        await eventually(lambda: again.secrets_for("vault") == {"token": SECRET})
    await gateway.server.stop()
    assert SECRET.encode() not in (gateway.home / "state.db").read_bytes()
