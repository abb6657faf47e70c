"""WebChat shows system.run requests waiting for approval, and its buttons answer them."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from clawgate.client import GatewayClient
from tests.browser.harness import TOKEN, Daemon, free_port
from tests.e2e.test_cli import CLAWGATE, env_for


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A gateway whose nodes may offer system.run, and a node host that allows `echo`."""
    root = tmp_path_factory.mktemp("approvals")
    home = root / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text('[nodes]\nallow_commands = ["system.run"]\n')
    (home / "config.toml").chmod(0o600)
    running = Daemon(home, free_port())
    running.start()
    node_home = root / "node-home"
    (node_home / "node").mkdir(parents=True, mode=0o700)
    (node_home / "node" / "node.toml").write_text('[exec]\nallow = [["echo", "**"]]\n')
    node = subprocess.Popen(
        [*CLAWGATE, "node", "run", "--url", f"ws://127.0.0.1:{running.port}/"],
        env=env_for(node_home, CLAWGATE_GATEWAY_TOKEN=TOKEN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield running
    node.terminate()
    node.wait(timeout=15)
    running.stop()


async def invoke_echo(url: str, words: list[str]) -> Any:
    async with GatewayClient(url, token=TOKEN, client_id="cli", client_mode="cli") as client:
        deadline = time.monotonic() + 30
        while True:
            nodes = [n for n in (await client.call("node.list"))["nodes"] if n["connected"]]
            if nodes or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        body = {
            "nodeId": nodes[0]["nodeId"],
            "command": "system.run",
            "params": {"command": ["echo", *words]},
            "idempotencyKey": str(uuid.uuid4()),
        }
        return await client.call("node.invoke", body, timeout=60)


def in_background(url: str, words: list[str]) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = asyncio.run(invoke_echo(url, words))
        except Exception as exc:  # the test asserts on it
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_allow_once_button_lets_the_run_go_ahead(page: Page, daemon: Daemon) -> None:
    page.goto(daemon.link)
    expect(page.locator("#status")).to_have_text("Connected")
    thread, outcome = in_background(f"ws://127.0.0.1:{daemon.port}/", ["from", "webchat"])
    panel = page.locator("#approvals")
    expect(panel).to_be_visible(timeout=30_000)
    expect(panel).to_contain_text("echo from webchat")
    panel.get_by_role("button", name="Allow once: echo from webchat").click()
    thread.join(timeout=30)
    assert outcome["result"]["payload"]["stdout"] == "from webchat\n"
    expect(panel).to_be_hidden()


def test_deny_button_refuses_the_run(page: Page, daemon: Daemon) -> None:
    page.goto(daemon.link)
    expect(page.locator("#status")).to_have_text("Connected")
    thread, outcome = in_background(f"ws://127.0.0.1:{daemon.port}/", ["never"])
    panel = page.locator("#approvals")
    expect(panel).to_contain_text("echo never", timeout=30_000)
    panel.get_by_role("button", name="Deny: echo never").click()
    thread.join(timeout=30)
    assert getattr(outcome.get("error"), "detail_code", None) == "APPROVAL_DENIED"
    expect(panel).to_be_hidden()
