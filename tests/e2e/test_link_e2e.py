"""Hub, daemon and the example plugin as real processes: desired state in, files on disk out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.link_stack import (
    HubProcess,
    PluginProcess,
    cli,
    configure_linked,
    eventually,
    read_jsonl,
    start_gateway,
)
from tests.integration.hub.test_daemon_link import manifest

SECRET = "e2e-link-secret-value-77120"


@dataclass
class Stack:
    hub: HubProcess
    home: Path
    root: Path
    api_key: str
    daemon_id: str
    plugin: PluginProcess


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    hub = HubProcess(tmp_path / "hub")
    await hub.start()
    home = tmp_path / "daemon"
    root = tmp_path / "plugin-root"
    plugin = PluginProcess(home, root, module="examples.dir_integrations")
    try:
        key = await hub.new_key()
        configure_linked(home, f"ws://127.0.0.1:{hub.port}/v1/daemon", key)
        await start_gateway(home)
        await plugin.start()
        yield Stack(hub, home, root, key, await hub.only_daemon(), plugin)
    finally:
        await plugin.stop()
        await cli(home, "gateway", "stop")
        await hub.stop()


def desired(greetings: dict[str, str]) -> dict[str, Any]:
    entries = []
    for item_id, greeting in greetings.items():
        entry: dict[str, Any] = {
            "id": item_id,
            "version": "1.0.0",
            "enabled": True,
            "manifest": manifest(item_id, ("base",) if item_id == "crm" else ()),
            "config": {"greeting": greeting},
        }
        if item_id == "crm":
            entry["secrets"] = {"token": SECRET}
        entries.append(entry)
    return {"integrations": entries}


async def put(stack: Stack, tmp_path: Path, greetings: dict[str, str], revision: int) -> None:
    file = tmp_path / f"desired-{revision}.json"
    file.write_text(json.dumps(desired(greetings)))
    url = ["--url", stack.hub.url]
    done = await cli(stack.hub.home, "hub", "desired", "set", stack.daemon_id, str(file), *url)
    assert done.code == 0, done.err
    assert f"revision {revision}" in done.out


def journal(root: Path) -> list[tuple[str, str]]:
    return [(entry["op"], entry["id"]) for entry in read_jsonl(root / ".journal")]


async def test_desired_state_from_the_hub_is_applied_changed_and_removed(
    stack: Stack, tmp_path: Path
) -> None:
    root = stack.root
    await put(stack, tmp_path, {"crm": "hi crm", "base": "hi base", "mail": "hi mail"}, 1)
    record = await stack.hub.converged_at(stack.daemon_id, 1)
    statuses = {row["id"]: row["status"] for row in record["lastReport"]["integrations"]}
    assert statuses == {"base": "active", "crm": "active", "mail": "active"}
    ops = journal(root)
    assert sorted(ops) == sorted(
        (op, item) for item in ("base", "crm", "mail") for op in ("install", "activate")
    )
    # crm depends on base: base is installed and active before crm is touched.
    assert ops.index(("activate", "base")) < ops.index(("install", "crm"))
    for item in ("base", "crm", "mail"):
        assert (root / item / "ACTIVE").exists()
    assert json.loads((root / "crm" / "config.json").read_text()) == {"greeting": "hi crm"}

    before = len(journal(root))
    await put(stack, tmp_path, {"crm": "hello crm", "base": "hi base", "mail": "hi mail"}, 2)
    await stack.hub.converged_at(stack.daemon_id, 2)
    assert journal(root)[before:] == [("configure", "crm")]
    assert json.loads((root / "crm" / "config.json").read_text()) == {"greeting": "hello crm"}

    before = len(journal(root))
    await put(stack, tmp_path, {"crm": "hello crm", "base": "hi base"}, 3)
    record = await stack.hub.converged_at(stack.daemon_id, 3)
    assert journal(root)[before:] == [("deactivate", "mail"), ("remove", "mail")]
    assert not (root / "mail").exists()
    statuses = {row["id"]: row["status"] for row in record["lastReport"]["integrations"]}
    assert statuses.get("mail") in (None, "removed")
    assert {statuses["base"], statuses["crm"]} == {"active"}

    listed = await cli(
        stack.hub.home, "hub", "reports", stack.daemon_id, "--json", "--url", stack.hub.url
    )
    assert listed.code == 0, listed.err
    newest = json.loads(listed.out)["reports"][0]
    assert newest["revision"] == 3 and newest["converged"] is True

    stopped = await cli(stack.home, "gateway", "stop")
    assert stopped.code == 0, stopped.err
    for path in [*stack.home.rglob("*"), *root.rglob("*")]:
        if path.is_file() and path.name != "config.toml":
            data = path.read_bytes()
            assert SECRET.encode() not in data, path
            assert stack.api_key.encode() not in data, path


async def test_a_plugin_that_leaves_shows_offline_on_the_hub_and_in_integrations(
    stack: Stack, tmp_path: Path
) -> None:
    await put(stack, tmp_path, {"base": "hi base"}, 1)
    await stack.hub.converged_at(stack.daemon_id, 1)
    await stack.plugin.stop()

    async def gone() -> bool | None:
        listed = await cli(stack.home, "plugins", "--json")
        return True if listed.code == 0 and not json.loads(listed.out)["plugins"] else None

    await eventually(gone, 10, "the daemon to see the plugin leave")
    listed = await cli(stack.home, "integrations", "--json")
    assert listed.code == 0, listed.err
    [row] = json.loads(listed.out)["integrations"]
    assert row["owner"] == "dir-integrations" and row["ownerConnected"] is False
    table = await cli(stack.home, "integrations")
    assert "(offline)" in table.out

    url = ["--url", stack.hub.url]

    async def offline_on_the_hub() -> list[Any] | None:
        shown = await cli(stack.hub.home, "hub", "daemon", stack.daemon_id, "--json", *url)
        plugins = json.loads(shown.out)["plugins"]
        return plugins if plugins and not any(p["connected"] for p in plugins) else None

    # The daemon reports the departure on its own (a pass with trigger "plugins").
    plugins = await eventually(offline_on_the_hub, 10, "the hub to show the plugin offline")
    assert [p["name"] for p in plugins] == ["dir-integrations"]


async def test_gateway_status_shows_the_daemon_id_the_hub_knows(stack: Stack) -> None:
    shown = await cli(stack.home, "gateway", "status", "--json")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["cloud"]["daemonId"] == stack.daemon_id
    table = await cli(stack.home, "gateway", "status")
    assert "hub daemon id" in table.out and stack.daemon_id in table.out
