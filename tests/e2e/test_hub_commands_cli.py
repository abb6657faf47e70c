"""`clawgate hub command get|list` against a real hub subprocess and a simulated daemon."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from tests.fakes.hub_daemon import SimDaemon

from .test_cli import CLAWGATE, env_for
from .test_hub_cli import cli, hub_process

__all__ = ["hub_process"]

Hub = tuple[subprocess.Popen[str], int, Path]


async def send(home: Path, url: list[str], daemon_id: str, name: str, *extra: str) -> str:
    code, out, err = await cli(
        home, "hub", "command", daemon_id, name, "--target", "capability=x", "--json", *extra, *url
    )
    assert code == 0, err
    return str(json.loads(out)["commandId"])


async def connected(port: int, home: Path, url: list[str], daemon_id: str) -> SimDaemon:
    code, out, err = await cli(home, "hub", "keys", "create", "--json", *url)
    assert code == 0, err
    daemon = SimDaemon(
        f"ws://127.0.0.1:{port}/v1/daemon", json.loads(out)["key"], daemon_id=daemon_id
    )
    assert await daemon.connect() is not None
    return daemon


async def test_command_get_accepts_a_prefix_and_shows_the_outcome(hub_process: Hub) -> None:
    _, port, home = hub_process
    url = ["--url", f"http://127.0.0.1:{port}"]
    daemon = await connected(port, home, url, "box-get")
    try:
        command_id = await send(home, url, "box-get", "echo.it", "--wait", "10")
        code, out, err = await cli(home, "hub", "command", "get", command_id[:8], *url)
        assert code == 0, err
        assert f"command {command_id} (echo.it on box-get): done" in out
        assert '"echo"' in out
    finally:
        await daemon.close()


async def test_command_get_wait_returns_the_outcome_once_it_arrives(hub_process: Hub) -> None:
    _, port, home = hub_process
    url = ["--url", f"http://127.0.0.1:{port}"]
    command_id = await send(home, url, "box-later", "echo.it")
    getter = await asyncio.create_subprocess_exec(
        *CLAWGATE,
        *("hub", "command", "get", command_id, "--wait", "30", "--json", *url),
        env=env_for(home),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    # The daemon connects only now; the pending command reaches it and its outcome the getter.
    daemon = await connected(port, home, url, "box-later")
    try:
        out, err = await asyncio.wait_for(getter.communicate(), 45)
        assert getter.returncode == 0, err.decode()
        record = json.loads(out)
        assert record["commandId"] == command_id
        assert record["state"] == "done" and record["terminal"] is True
    finally:
        await daemon.close()


async def test_command_get_of_an_unknown_id_names_the_listing(hub_process: Hub) -> None:
    _, port, home = hub_process
    url = ["--url", f"http://127.0.0.1:{port}"]
    code, _, err = await cli(home, "hub", "command", "get", "nope", *url)
    assert code == 1
    assert "no command starts with 'nope'; see `clawgate hub command list DAEMON`" in err


async def test_command_list_shows_the_newest_first(hub_process: Hub) -> None:
    _, port, home = hub_process
    url = ["--url", f"http://127.0.0.1:{port}"]
    daemon = await connected(port, home, url, "box-list")
    try:
        first = await send(home, url, "box-list", "first.one", "--wait", "10")
        second = await send(home, url, "box-list", "second.one", "--wait", "10")
        code, out, err = await cli(home, "hub", "command", "list", "box-l", "--json", *url)
        assert code == 0, err
        listed = [c["commandId"] for c in json.loads(out)["commands"]]
        assert listed == [second, first]
        code, out, err = await cli(home, "hub", "command", "list", "box-list", *url)
        assert code == 0, err
        assert out.index(second) < out.index(first)
        assert "clawgate hub command get ID" in out
    finally:
        await daemon.close()


async def test_command_send_is_the_explicit_form(hub_process: Hub) -> None:
    _, port, home = hub_process
    url = ["--url", f"http://127.0.0.1:{port}"]
    code, out, err = await cli(
        home, "hub", "command", "send", "box-x", "a.b", "--target", "capability=x", *url
    )
    assert code == 0, err
    assert "(a.b on box-x): pending" in out or "(a.b on box-x): " in out
