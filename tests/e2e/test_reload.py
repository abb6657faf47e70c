"""SIGHUP and `clawgate gateway reload`: config.toml re-read by a real gateway process."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import Daemon, free_port, run_cli, start_daemon, stop_daemon

ORIGIN = "http://app.example"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = start_daemon(tmp_path / "home")
    yield running
    if running.process.poll() is None:
        stop_daemon(running)


def upgrade_status(port: int, origin: str) -> int:
    """Send a WebSocket upgrade with `origin`; return the HTTP status of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            (
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
            ).encode()
        )
        return int(sock.recv(4096).split(b" ", 2)[1])


def log_text(daemon: Daemon) -> str:
    return (daemon.home / "logs" / "gateway.log").read_text()


def wait_for_log(daemon: Daemon, text: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = log_text(daemon)
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the gateway log:\n{log_text(daemon)}")


def append_config(daemon: Daemon, text: str) -> None:
    config = daemon.home / "config.toml"
    config.write_text(config.read_text() + text)


def test_reload_applies_live_keys_and_names_restart_only_ones(daemon: Daemon) -> None:
    assert upgrade_status(daemon.port, ORIGIN) == 403
    new_port = free_port()
    append_config(daemon, f'\n[gateway]\nport = {new_port}\nallowed_origins = ["{ORIGIN}"]\n')

    reload = run_cli(daemon.home, "gateway", "reload")

    assert reload.returncode == 0, reload.stderr
    assert f"pid {daemon.process.pid}" in reload.stdout
    log = wait_for_log(daemon, "config reloaded from")
    assert "config reload: gateway.port changed; it applies at the next restart" in log
    assert "gateway.allowed_origins changed" not in log
    assert upgrade_status(daemon.port, ORIGIN) == 101
    got = run_cli(daemon.home, "call", "config.get", "--json", "--url", daemon.url)
    assert got.returncode == 0, got.stderr
    parsed = json.loads(got.stdout)["parsed"]
    assert parsed["gateway"]["allowed_origins"] == [ORIGIN]


def test_sighup_refuses_an_invalid_file_and_keeps_serving(daemon: Daemon) -> None:
    append_config(daemon, '\n[log]\nlevel = "loud"\n')

    os.kill(daemon.process.pid, signal.SIGHUP)

    log = wait_for_log(daemon, "config reload refused, running config kept")
    refused = [line for line in log.splitlines() if "config reload refused" in line]
    assert len(refused) == 1 and "log.level" in refused[0]
    assert "Traceback" not in log
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.port}/readyz", timeout=5) as answer:
        assert answer.status == 200
    assert daemon.process.poll() is None


def test_reload_without_a_running_gateway_exits_2(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)

    reload = run_cli(home, "gateway", "reload")

    assert reload.returncode == 2
    assert "no gateway running" in reload.stderr
