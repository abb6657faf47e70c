"""The `clawgate` command as a user runs it: real subprocesses, a fresh home each time."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

CLAWGATE = [sys.executable, "-m", "clawgate.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWGATE_")}
    env["CLAWGATE_HOME"] = str(home)
    env.update(extra)
    return env


def run_cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLAWGATE, *args],
        env=env_for(home, **extra),
        capture_output=True,
        text=True,
        timeout=30,
    )


@dataclass
class Daemon:
    process: subprocess.Popen[str]
    port: int
    home: Path
    banner: str

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"


def start_daemon(home: Path, *args: str, **extra: str) -> Daemon:
    port = free_port()
    process = subprocess.Popen(
        [*CLAWGATE, "gateway", "run", "--port", str(port), *args],
        env=env_for(home, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    banner: list[str] = []
    deadline = time.monotonic() + 20
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"gateway exited early:\n{''.join(banner)}")
        banner.append(line)
        if "auth:" in line:
            break
    return Daemon(process, port, home, "".join(banner))


def stop_daemon(daemon: Daemon) -> tuple[int, str]:
    daemon.process.send_signal(signal.SIGTERM)
    output, _ = daemon.process.communicate(timeout=15)
    return daemon.process.returncode, daemon.banner + output


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "clawgate-home"


@pytest.fixture
def daemon(home: Path) -> Iterator[Daemon]:
    running = start_daemon(home)
    yield running
    if running.process.poll() is None:
        stop_daemon(running)


def test_zero_config_start_creates_a_private_home_with_a_token(daemon: Daemon) -> None:
    home = daemon.home
    config = home / "config.toml"
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert "token = " in config.read_text()
    assert f"ws://127.0.0.1:{daemon.port}/" in daemon.banner
    assert f"WebChat: http://127.0.0.1:{daemon.port}/" in daemon.banner
    assert "generated and stored in" in daemon.banner
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.port}/readyz", timeout=5) as response:
        assert response.status == 200


def test_call_health_and_status_use_the_stored_token(daemon: Daemon) -> None:
    health = run_cli(daemon.home, "call", "health", "--json", "--url", daemon.url)
    assert health.returncode == 0, health.stderr
    assert '"ok":true' in health.stdout
    table = run_cli(daemon.home, "status", "--url", daemon.url)
    assert table.returncode == 0, table.stderr
    assert "clawgate status" in table.stdout and "uptime" in table.stdout
    human = run_cli(daemon.home, "health", "--url", daemon.url)
    assert "default agent" in human.stdout
    params = run_cli(
        daemon.home, "call", "health", "--params", '{"probe": true}', "--url", daemon.url
    )
    assert params.returncode == 0, params.stderr


def test_errors_are_one_line_with_a_non_zero_exit(daemon: Daemon) -> None:
    wrong = run_cli(daemon.home, "call", "health", "--url", daemon.url, "--token", "wrong")
    assert wrong.returncode == 1
    assert "AUTH_TOKEN_MISMATCH" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1
    unknown = run_cli(daemon.home, "call", "no.such", "--url", daemon.url)
    assert unknown.returncode == 1 and "unknown method: no.such" in unknown.stderr
    bad_json = run_cli(daemon.home, "call", "health", "--params", "{nope", "--url", daemon.url)
    assert bad_json.returncode == 2 and "--params must be valid JSON" in bad_json.stderr


def test_sigterm_stops_cleanly_and_secrets_stay_out_of_logs(daemon: Daemon) -> None:
    token = (daemon.home / "config.toml").read_text().split('token = "')[1].split('"')[0]
    assert run_cli(daemon.home, "call", "health", "--url", daemon.url).returncode == 0
    run_cli(daemon.home, "call", "health", "--url", daemon.url, "--token", "a-wrong-guess-123")
    code, output = stop_daemon(daemon)
    assert code == 0
    log = (daemon.home / "logs" / "gateway.log").read_text()
    assert "gateway stopped" in log and "handshake refused" in log
    for text in (log, output):
        assert token not in text
        assert "a-wrong-guess-123" not in text


def test_env_token_overrides_and_is_not_written(home: Path) -> None:
    running = start_daemon(home, CLAWGATE_GATEWAY_TOKEN="env-token-value-42")
    try:
        assert "CLAWGATE_GATEWAY_TOKEN" in running.banner
        ok = run_cli(
            home,
            "call",
            "health",
            "--url",
            running.url,
            CLAWGATE_GATEWAY_TOKEN="env-token-value-42",
        )
        assert ok.returncode == 0, ok.stderr
        assert not (home / "config.toml").exists()
    finally:
        stop_daemon(running)


def test_password_mode(home: Path) -> None:
    running = start_daemon(home, "--auth", "password", "--password", "hunter2-but-longer")
    try:
        refused = run_cli(home, "call", "health", "--url", running.url, "--token", "x")
        assert refused.returncode == 1 and "AUTH_PASSWORD_MISSING" in refused.stderr
        ok = run_cli(
            home,
            "call",
            "health",
            "--url",
            running.url,
            CLAWGATE_GATEWAY_PASSWORD="hunter2-but-longer",
        )
        assert ok.returncode == 0, ok.stderr
    finally:
        stop_daemon(running)


def test_lan_bind_without_auth_is_refused(home: Path) -> None:
    result = run_cli(home, "gateway", "run", "--bind", "lan", "--auth", "none", "--port", "0")
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in result.stderr


def test_unknown_config_key_is_named(home: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text("[gateway]\nport = 18789\nprot = 1\n")
    result = run_cli(home, "gateway", "run")
    assert result.returncode == 2
    assert "config.toml:3: unknown key 'gateway.prot'" in result.stderr


def test_a_config_that_is_not_utf8_is_one_line_and_exit_2(home: Path) -> None:
    home.mkdir(mode=0o700)
    (home / "config.toml").write_bytes(b"[gateway]\nport = 1\n# caf\xe9\n")
    (home / "config.toml").chmod(0o600)
    result = run_cli(home, "gateway", "run", "--port", "0")
    assert result.returncode == 2
    assert "not UTF-8" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_port_in_use_is_reported(daemon: Daemon, tmp_path: Path) -> None:
    other = run_cli(tmp_path / "other", "gateway", "run", "--port", str(daemon.port))
    assert other.returncode == 1
    assert f"cannot listen on 127.0.0.1:{daemon.port}" in other.stderr


def test_gateway_not_running_says_how_to_start_it(home: Path) -> None:
    result = run_cli(home, "call", "health", "--url", f"ws://127.0.0.1:{free_port()}/")
    assert result.returncode == 2
    assert "connection refused; is it running? `clawgate gateway start`" in result.stderr


def test_error_messages_keep_their_brackets(home: Path) -> None:
    result = run_cli(home, "gateway", "run", "--auth", "password", "--port", "0")
    assert result.returncode == 2
    assert "set [gateway.auth] password in config.toml" in result.stderr
