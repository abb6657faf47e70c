"""`clawgate hub start|stop|restart|status|logs|install|uninstall` as real background processes."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import CLAWGATE, env_for, free_port, run_cli


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still alive")


def status(home: Path) -> tuple[int, dict[str, object]]:
    result = run_cli(home, "hub", "status", "--json")
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    yield home
    run_cli(home, "hub", "stop")


def test_start_status_double_start_and_stop(home: Path) -> None:
    started = run_cli(home, "hub", "start", "--port", "0")
    assert started.returncode == 0, started.stderr + started.stdout
    assert "clawgate hub started (pid" in started.stdout
    assert "cloud.url = ws://127.0.0.1:" in started.stdout
    code, report = status(home)
    assert code == 0
    assert report["running"] is True and report["detached"] is True
    assert report["daemons"] == {"connected": 0, "total": 0}
    again = run_cli(home, "hub", "start")
    assert again.returncode == 3
    assert "already running" in again.stderr and "clawgate hub stop" in again.stderr
    stopped = run_cli(home, "hub", "stop")
    assert stopped.returncode == 0
    assert f"stopped clawgate hub (pid {report['pid']})" in stopped.stdout
    wait_gone(int(str(report["pid"])))
    code, report = status(home)
    assert code == 1 and report["running"] is False
    assert not (home / "hub.run.json").exists()


def test_the_cli_finds_a_hub_started_on_a_free_port(home: Path) -> None:
    started = run_cli(home, "hub", "start", "--port", "0")
    assert started.returncode == 0, started.stderr
    listed = run_cli(home, "hub", "daemons", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"daemons": []}


def test_status_of_a_stopped_hub_says_how_to_start_it(home: Path) -> None:
    result = run_cli(home, "hub", "status")
    assert result.returncode == 1
    assert "clawgate hub is not running; start it with `clawgate hub start`" in result.stdout


def test_restart_gives_a_new_process(home: Path) -> None:
    assert run_cli(home, "hub", "start", "--port", "0").returncode == 0
    _, before = status(home)
    restarted = run_cli(home, "hub", "restart", "--port", "0")
    assert restarted.returncode == 0, restarted.stderr
    assert "stopped clawgate hub" in restarted.stdout and "started (pid" in restarted.stdout
    _, after = status(home)
    assert after["running"] is True
    assert after["pid"] != before["pid"] and after["bootId"] != before["bootId"]


def test_restart_refuses_to_replace_a_foreground_hub(home: Path) -> None:
    foreground = subprocess.Popen(
        [*CLAWGATE, "hub", "run", "--port", "0"],
        env=env_for(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while status(home)[0] != 0:
            assert time.monotonic() < deadline, "the foreground hub did not come up"
            time.sleep(0.1)
        refused = run_cli(home, "hub", "restart")
        assert refused.returncode == 1
        assert "not started by `clawgate hub start`" in refused.stderr
        assert foreground.poll() is None
    finally:
        foreground.terminate()
        foreground.wait(timeout=15)


def test_a_failed_start_prints_the_childs_error_and_exits_non_zero(home: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(home, "hub", "start", "--port", str(port))
    assert result.returncode == 1
    assert "hub did not start: " in result.stderr and f"127.0.0.1:{port}" in result.stderr


def test_logs_prints_what_the_hub_logged(home: Path) -> None:
    assert run_cli(home, "hub", "start", "--port", "0").returncode == 0
    result = run_cli(home, "hub", "logs", "-n", "20")
    assert result.returncode == 0
    assert "hub ready on http://127.0.0.1:" in result.stdout
    assert (home / "logs" / "hub.log").stat().st_mode & 0o777 == 0o600


def test_run_bind_listens_on_the_given_address(home: Path) -> None:
    port = free_port()
    started = run_cli(home, "hub", "start", "--bind", "127.0.0.2", "--port", str(port))
    assert started.returncode == 0, started.stderr
    assert f"on http://127.0.0.2:{port}" in started.stdout
    _, report = status(home)
    assert report["url"] == f"http://127.0.0.2:{port}"


def test_run_bind_refuses_a_name_that_is_no_address(home: Path) -> None:
    result = run_cli(home, "hub", "run", "--bind", "example.org")
    assert result.returncode == 2
    assert "bind must be loopback, lan or an IP address" in result.stderr


def test_install_dry_run_prints_a_hub_unit_without_secrets(home: Path) -> None:
    result = run_cli(home, "hub", "install", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Description=clawgate hub" in result.stdout
    assert "Type=simple" in result.stdout
    exec_start = [line for line in result.stdout.splitlines() if line.startswith("ExecStart=")]
    assert exec_start and exec_start[0].endswith(" hub run")
    assert f"CLAWGATE_HOME={home}" in result.stdout
    assert "clawgate-hub.service" in result.stderr


def test_uninstall_dry_run_names_the_hub_unit(home: Path) -> None:
    result = run_cli(home, "hub", "uninstall", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "clawgate-hub.service" in result.stderr
