"""The reconciliation engine end to end: a real gateway, the example plugin, files on disk."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from examples.dir_integrations import DirIntegrations, build_plugin

from clawgate.client import GatewayCallError, GatewayClient
from clawgate.plugin import Plugin, PluginError
from tests.conftest import RunningGateway
from tests.integration.plugin_helpers import dir_plugin, running

SECRET = "integration-secret-value-8812"
WAIT = 10.0


def manifest(item_id: str, version: str = "1.0.0", **extra: Any) -> dict[str, Any]:
    """Return a valid manifest for ``item_id``."""
    return {
        "id": item_id,
        "version": version,
        "name": item_id.title(),
        "config_schema": {
            "type": "object",
            "properties": {
                "greeting": {"type": "string"},
                "token": {"type": "string", "x-secret": True},
            },
        },
        "commands": [{"name": "dir.touch", "timeout_ms": 5000}],
        **extra,
    }


def entry(
    item_id: str, *, version: str = "1.0.0", depends_on: tuple[str, ...] = (), **fields: Any
) -> dict[str, Any]:
    """Return a desired entry with a fitting manifest."""
    out: dict[str, Any] = {
        "id": item_id,
        "version": version,
        "enabled": True,
        "manifest": manifest(item_id, version, depends_on=list(depends_on)),
        "config": {"greeting": f"hello {item_id}"},
    }
    out.update(fields)
    return out


@pytest.fixture
async def client(host: RunningGateway) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(host.url, token=host.token) as connected:
        yield connected


def journal(root: Path) -> list[tuple[str, str]]:
    """Return the (op, id) lines the example plugin wrote, in order."""
    path = root / ".journal"
    if not path.exists():
        return []
    return [(line["op"], line["id"]) for line in map(orjson.loads, path.read_bytes().splitlines())]


async def wait_for(
    client: GatewayClient, check: Callable[[dict[str, Any]], bool], timeout: float = WAIT
) -> dict[str, Any]:
    """Poll ``integrations.list`` until ``check`` holds, and return that view."""
    view: dict[str, Any] = {}
    async with asyncio.timeout(timeout):
        while True:
            view = await client.call("integrations.list", {})
            if check(view):
                return view
            await asyncio.sleep(0.02)


def statuses(view: dict[str, Any]) -> dict[str, str]:
    return {row["id"]: row["status"] for row in view["integrations"]}


def converged_at(revision: int) -> Callable[[dict[str, Any]], bool]:
    return lambda view: (
        view["appliedRevision"] >= revision and view["converged"] and not view["running"]
    )


async def test_offline_plugin_leaves_items_pending_then_installs_in_dependency_order(
    host: RunningGateway, client: GatewayClient, socket_dir: Path, tmp_path: Path
) -> None:
    applied = await client.call(
        "integrations.apply",
        {
            "integrations": [
                entry("crm", depends_on=("mail",)),
                entry("mail", depends_on=("base",)),
                entry("base"),
            ]
        },
    )
    assert applied == {"revision": 1, "changed": True}
    view = await wait_for(client, lambda v: v["appliedRevision"] == 1)
    rows = {row["id"]: row for row in view["integrations"]}
    assert rows["base"]["status"] == "pending" and rows["base"]["error"]["code"] == "PLUGIN_OFFLINE"
    assert rows["crm"]["error"]["code"] in ("DEPENDENCY_NOT_READY", "PLUGIN_OFFLINE")

    root = tmp_path / "integrations"
    async with running(dir_plugin(root), socket_dir / "gateway.sock"):
        view = await wait_for(client, converged_at(1))
    assert statuses(view) == {"base": "active", "mail": "active", "crm": "active"}
    assert {row["owner"] for row in view["integrations"]} == {"dir-integrations"}
    for item_id in ("base", "mail", "crm"):
        assert (root / item_id / "ACTIVE").exists()
        assert orjson.loads((root / item_id / "config.json").read_bytes()) == {
            "greeting": f"hello {item_id}"
        }
    ops = journal(root)
    assert ops.index(("activate", "base")) < ops.index(("install", "mail"))
    assert ops.index(("activate", "mail")) < ops.index(("install", "crm"))
    assert view["lastReport"]["converged"] is True and view["lastReport"]["revision"] == 1


async def test_config_change_reconfigures_only_that_item_and_removal_takes_it_down(
    host: RunningGateway, client: GatewayClient, socket_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "integrations"
    async with running(dir_plugin(root), socket_dir / "gateway.sock"):
        await client.call(
            "integrations.apply", {"integrations": [entry("a"), entry("b"), entry("c")]}
        )
        await wait_for(client, converged_at(1))
        before = len(journal(root))

        changed = entry("b", config={"greeting": "changed"})
        await client.call("integrations.apply", {"integrations": [entry("a"), changed, entry("c")]})
        await wait_for(client, converged_at(2))
        assert journal(root)[before:] == [("configure", "b")]
        assert orjson.loads((root / "b" / "config.json").read_bytes()) == {"greeting": "changed"}

        before = len(journal(root))
        await client.call("integrations.apply", {"integrations": [entry("a"), changed]})
        view = await wait_for(client, converged_at(3))
        assert journal(root)[before:] == [("deactivate", "c"), ("remove", "c")]
        assert not (root / "c").exists()
        assert set(statuses(view)) == {"a", "b"}
        removed = [row for row in view["lastReport"]["integrations"] if row["id"] == "c"]
        assert removed == [] or removed[0]["status"] == "removed"


async def test_upgrade_and_disable_run_install_then_deactivate(
    host: RunningGateway, client: GatewayClient, socket_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "integrations"
    async with running(dir_plugin(root), socket_dir / "gateway.sock"):
        await client.call("integrations.apply", {"integrations": [entry("a")]})
        await wait_for(client, converged_at(1))
        before = len(journal(root))
        await client.call(
            "integrations.apply", {"integrations": [entry("a", version="1.1.0", enabled=False)]}
        )
        view = await wait_for(client, converged_at(2))
    assert journal(root)[before:] == [("upgrade", "a"), ("deactivate", "a")]
    row = view["integrations"][0]
    assert (row["status"], row["version"], row["desiredVersion"]) == ("inactive", "1.1.0", "1.1.0")
    assert not (root / "a" / "ACTIVE").exists()


async def test_invalid_entries_and_cycles_are_errors_while_the_rest_converges(
    host: RunningGateway, client: GatewayClient, socket_dir: Path, tmp_path: Path
) -> None:
    bad_config = entry("bad", config={"greeting": 42})
    misplaced = entry("leaky", config={"token": SECRET})
    cycle = [entry("x", depends_on=("y",)), entry("y", depends_on=("x",))]
    missing = entry("orphan", depends_on=("ghost",))
    async with running(dir_plugin(tmp_path / "i"), socket_dir / "gateway.sock"):
        await client.call(
            "integrations.apply",
            {"integrations": [entry("good"), bad_config, misplaced, *cycle, missing]},
        )
        view = await wait_for(
            client, lambda v: v["appliedRevision"] == 1 and statuses(v).get("good") == "active"
        )
    rows = {row["id"]: row for row in view["integrations"]}
    assert rows["bad"]["error"]["code"] == "INVALID_CONFIG"
    assert rows["bad"]["error"]["details"]["errors"][0]["path"] == "config.greeting"
    assert rows["leaky"]["error"]["code"] == "INVALID_CONFIG"
    assert rows["x"]["error"]["code"] == rows["y"]["error"]["code"] == "DEPENDENCY_CYCLE"
    assert rows["orphan"]["error"]["code"] == "DEPENDENCY_MISSING"
    assert view["converged"] is False
    assert SECRET not in orjson.dumps(view).decode()
    await host.server.stop()
    assert SECRET.encode() not in (host.home / "state.db").read_bytes()


async def test_secrets_reach_the_plugin_in_memory_only_and_are_asked_for_again_after_a_restart(
    host: RunningGateway, socket_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "integrations"
    desired = {"integrations": [entry("vault", secrets={"token": SECRET})]}
    store = DirIntegrations(root)
    plugin = build_plugin(store, backoff_initial=0.05, backoff_max=0.2)
    async with running(plugin, socket_dir / "gateway.sock"):
        async with GatewayClient(host.url, token=host.token) as client:
            await client.call("integrations.apply", desired)
            await wait_for(client, converged_at(1))
        assert store.secrets_for("vault") == {"token": SECRET}
        assert SECRET.encode() not in (root / "vault" / "config.json").read_bytes()

        await host.restart()
        # A fresh plugin process has lost the secret: the daemon has none to give it.
    async with (
        running(dir_plugin(root), socket_dir / "gateway.sock"),
        GatewayClient(host.url, token=host.token) as client,
    ):
        view = await wait_for(
            client,
            lambda v: v["integrations"][0].get("error", {}).get("code") == "SECRETS_UNAVAILABLE",
        )
        assert statuses(view) == {"vault": "pending"}
        # The hub (here: the operator) sends the values again and the item converges.
        await client.call("integrations.apply", desired)
        await wait_for(client, converged_at(2))
    await host.server.stop()
    for path in host.home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


async def test_drift_reinstalls_what_vanished_from_the_plugin(
    host: RunningGateway, client: GatewayClient, socket_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "integrations"
    async with running(dir_plugin(root), socket_dir / "gateway.sock"):
        await client.call("integrations.apply", {"integrations": [entry("a"), entry("b")]})
        await wait_for(client, converged_at(1))
    shutil.rmtree(root / "b")  # someone deleted it while the plugin was away
    async with running(dir_plugin(root), socket_dir / "gateway.sock"):
        view = await wait_for(client, lambda v: v["lastReport"]["drift"] and v["converged"])
    assert (root / "b" / "ACTIVE").exists()
    assert statuses(view) == {"a": "active", "b": "active"}


async def test_plugin_report_updates_the_ledger_and_triggers_a_repair(
    host: RunningGateway, client: GatewayClient, socket_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "integrations"
    async with running(dir_plugin(root), socket_dir / "gateway.sock") as plugin:
        await client.call("integrations.apply", {"integrations": [entry("a")]})
        await wait_for(client, converged_at(1))
        (root / "a" / "ACTIVE").unlink()
        assert await plugin.report("a", "inactive") == {"accepted": True}
        view = await wait_for(client, lambda v: v["lastReport"]["drift"] and v["converged"])
        assert (root / "a" / "ACTIVE").exists()
        assert statuses(view) == {"a": "active"}
        with pytest.raises(PluginError) as refused:
            await plugin.report("unknown", "active")
        assert refused.value.code == "NOT_FOUND"
        listed = await plugin.call("integration.list", {"ownedOnly": True})
        assert [row["id"] for row in listed["integrations"]] == ["a"] and listed["revision"] == 1


async def test_a_failing_step_is_retried_with_backoff_and_reported(
    host: RunningGateway, client: GatewayClient, socket_dir: Path
) -> None:
    broken = Plugin("broken", version="1.0.0", capabilities=["integrations"], backoff_initial=0.05)

    @broken.handler("integration.install")
    async def install(params: dict[str, Any]) -> dict[str, Any]:
        raise PluginError(
            "UNAVAILABLE", f"disk full while installing {params['integrationId']}", retryable=True
        )

    @broken.handler("integration.list")
    async def inventory(params: dict[str, Any]) -> dict[str, Any]:
        return {"integrations": []}

    async with running(broken, socket_dir / "gateway.sock"):
        await client.call("integrations.apply", {"integrations": [entry("a")]})
        view = await wait_for(client, lambda v: statuses(v).get("a") == "error")
    row = view["integrations"][0]
    assert row["attempts"] == 1 and row["error"]["code"] == "UNAVAILABLE"
    assert "disk full" in row["error"]["message"] and "nextAttemptAt" in row


async def test_commands_for_an_integration_route_to_its_owner_or_are_rejected(
    host: RunningGateway, client: GatewayClient, socket_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "integrations"
    plugins = host.server.plugins
    assert plugins is not None

    def plugins_now() -> int:
        return host.server.now_ms()

    def command(command_id: str, name: str, target: str) -> dict[str, Any]:
        return {
            "commandId": command_id,
            "name": name,
            "target": {"integrationId": target},
            "params": {"name": command_id},
            "issuedAt": plugins_now(),
        }

    await client.call("integrations.apply", {"integrations": [entry("a")]})
    assert (await plugins.router.submit(command("c0", "dir.touch", "nope")))["error"][
        "code"
    ] == "NOT_FOUND"
    assert (await plugins.router.submit(command("c1", "dir.nope", "a")))["error"][
        "code"
    ] == "METHOD_NOT_FOUND"
    queued = await plugins.router.submit(command("c2", "dir.touch", "a"))
    assert queued["state"] == "queued"  # the owner is not connected yet
    async with running(dir_plugin(root), socket_dir / "gateway.sock"):
        await wait_for(client, converged_at(1))
        async with asyncio.timeout(WAIT):
            while not (root / "touched" / "c2").exists():
                await asyncio.sleep(0.02)
    with pytest.raises(GatewayCallError) as refused:
        await client.call("integrations.apply", {"integrations": [], "ifRevision": 7})
    assert refused.value.code == "INVALID_REQUEST"


async def test_a_step_too_large_for_one_ipc_frame_fails_without_retry_storms(
    host: RunningGateway, client: GatewayClient, socket_dir: Path, tmp_path: Path
) -> None:
    huge = entry("huge", config={"greeting": "x" * 1_100_000})
    async with running(dir_plugin(tmp_path / "i"), socket_dir / "gateway.sock") as plugin:
        await client.call("integrations.apply", {"integrations": [huge, entry("small")]})
        view = await wait_for(
            client,
            lambda v: statuses(v).get("small") == "active" and statuses(v).get("huge") == "error",
        )
        row = next(r for r in view["integrations"] if r["id"] == "huge")
        assert row["error"]["code"] == "INVALID_PARAMS" and "1 MiB" in row["error"]["message"]
        assert "nextAttemptAt" not in row  # not retryable: it would fail the same way
        assert plugin.registration is not None  # the plugin was never disconnected by it
