"""`clawgate hub …` as an operator runs it: real hub and CLI subprocesses, a simulated daemon."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.hub_daemon import SimDaemon

from .test_cli import CLAWGATE, env_for, free_port, run_cli

SECRET = "ghp_e2e_secret_value_never_logged"


@pytest.fixture
def hub_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, Path]]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    port = free_port()
    process = subprocess.Popen(
        [*CLAWGATE, "hub", "run", "--port", str(port)],
        env=env_for(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1):
                break
        except OSError:
            if process.poll() is not None:
                raise AssertionError(f"hub exited: {process.stdout.read()}") from None  # type: ignore[union-attr]
            time.sleep(0.05)
    yield process, port, home
    if process.poll() is None:
        process.kill()
        process.wait()


async def cli(home: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLAWGATE,
        *args,
        env=env_for(home),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_operator_flow_end_to_end(
    hub_process: tuple[subprocess.Popen[str], int, Path], tmp_path: Path
) -> None:
    process, port, home = hub_process
    assert (home / "hub.toml").stat().st_mode & 0o777 == 0o600
    url = ["--url", f"http://127.0.0.1:{port}"]
    code, out, err = await cli(home, "hub", "keys", "create", "--label", "box", "--json", *url)
    assert code == 0, err
    key = json.loads(out)["key"]
    daemon = SimDaemon(f"ws://127.0.0.1:{port}/v1/daemon", key)
    assert await daemon.connect() is not None
    try:
        desired = {
            "integrations": [
                {
                    "id": "github",
                    "version": "1.4.0",
                    "manifest": {
                        "id": "github",
                        "version": "1.4.0",
                        "name": "GitHub",
                        "config_schema": {
                            "type": "object",
                            "properties": {"token": {"type": "string", "x-secret": True}},
                        },
                    },
                    "config": {},
                    "secrets": {"token": SECRET},
                }
            ]
        }
        file = tmp_path / "desired.json"
        file.write_text(json.dumps(desired))
        code, out, err = await cli(home, "hub", "desired", "set", daemon.daemon_id, str(file), *url)
        assert code == 0, err
        assert "revision 1" in out
        pushed = await daemon.next("DESIRED_STATE")
        while pushed["payload"]["revision"] != 1:
            pushed = await daemon.next("DESIRED_STATE")
        assert pushed["payload"]["integrations"][0]["secrets"] == {"token": SECRET}
        code, out, err = await cli(
            home,
            "hub",
            "command",
            daemon.daemon_id,
            "github.sync",
            "--target",
            "integration=github",
            "--params",
            '{"full": true}',
            "--wait",
            "10",
            "--json",
            *url,
        )
        assert code == 0, err
        record = json.loads(out)
        assert record["state"] == "done"
        assert record["result"] == {"echo": {"full": True}}
        assert list(daemon.executed.values()) == [1]
        code, out, err = await cli(home, "hub", "daemons", "--json", *url)
        assert json.loads(out)["daemons"][0]["connected"] is True
        code, out, err = await cli(home, "hub", "desired", "get", daemon.daemon_id, *url)
        assert SECRET not in out
        assert '"token"' in out
    finally:
        await daemon.close()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=15)
    assert process.returncode == 0
    assert SECRET not in output
    assert key not in output
    for path in home.iterdir():
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes()
            assert key.encode() not in path.read_bytes()


def test_second_hub_on_the_same_db_exits_3(
    hub_process: tuple[subprocess.Popen[str], int, Path],
) -> None:
    _, _, home = hub_process
    result = run_cli(home, "hub", "run", "--port", str(free_port()))
    assert result.returncode == 3
    assert "another hub" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_without_a_running_hub_says_how_to_start_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = {"CLAWGATE_HUB_ADMIN_TOKEN": "t" * 32}
    result = run_cli(home, "hub", "daemons", "--url", f"http://127.0.0.1:{free_port()}", **env)
    assert result.returncode == 2
    assert "connection refused; is it running? `clawgate hub start`" in result.stderr


def test_bus_url_is_refused_with_a_clear_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    result = run_cli(home, "hub", "run", "--port", "0", CLAWGATE_HUB_BUS_URL="nats://x:4222")
    assert result.returncode == 2
    assert "needs a PostgreSQL --database-url" in result.stderr


async def test_daemon_and_key_ids_accept_a_unique_prefix_and_refuse_an_ambiguous_one(
    hub_process: tuple[subprocess.Popen[str], int, Path],
) -> None:
    _, port, home = hub_process
    url = ["--url", f"http://127.0.0.1:{port}"]
    keys = []
    for label in ("one", "two"):
        code, out, err = await cli(home, "hub", "keys", "create", "--label", label, "--json", *url)
        assert code == 0, err
        keys.append(json.loads(out))
    daemons = [
        SimDaemon(f"ws://127.0.0.1:{port}/v1/daemon", keys[0]["key"], daemon_id="box-alpha"),
        SimDaemon(f"ws://127.0.0.1:{port}/v1/daemon", keys[1]["key"], daemon_id="box-beta"),
    ]
    for daemon in daemons:
        assert await daemon.connect() is not None
    try:
        code, out, err = await cli(home, "hub", "daemon", "box-a", "--json", *url)
        assert code == 0, err
        assert json.loads(out)["daemonId"] == "box-alpha"
        code, out, err = await cli(home, "hub", "reports", "box", *url)
        assert code == 1
        assert "ambiguous: 2 matches for 'box'" in err and "`clawgate hub daemons`" in err
        code, out, err = await cli(home, "hub", "daemon", "nope", *url)
        assert code == 1
        assert "no daemon starts with 'nope'; see `clawgate hub daemons`" in err
        assert "/v1/" not in err
    finally:
        for daemon in daemons:
            await daemon.close()
    code, out, err = await cli(home, "hub", "keys", "revoke", "key_", *url)
    assert code == 1 and "ambiguous: 2 matches" in err
    code, out, err = await cli(home, "hub", "keys", "revoke", keys[1]["keyId"][:12], *url)
    assert code == 0, err
    assert f"revoked {keys[1]['keyId']}" in out
