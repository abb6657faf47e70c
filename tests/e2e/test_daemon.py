"""`clawgate gateway start|stop|restart|status|logs` as real background processes."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_cli import env_for, free_port, run_cli, start_daemon, stop_daemon


def configure(home: Path, port: int) -> None:
    home.mkdir(mode=0o700, exist_ok=True)
    config = home / "config.toml"
    config.write_text(f"[gateway]\nport = {port}\n")
    config.chmod(0o600)


def recorded_pid(home: Path) -> int:
    return int((home / "gateway.pid").read_text().strip())


def wait_gone(pid: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} still alive")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    configure(home, free_port())
    return home


@pytest.fixture(autouse=True)
def stop_leftovers(home: Path):  # type: ignore[no-untyped-def]
    yield
    run_cli(home, "gateway", "stop")


def test_start_status_double_start_crash_recovery_and_stop(home: Path) -> None:
    started = run_cli(home, "gateway", "start")
    assert started.returncode == 0, started.stderr + started.stdout
    assert "started (pid" in started.stdout
    pid = recorded_pid(home)

    status = run_cli(home, "gateway", "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["running"] is True and report["pid"] == pid and report["ready"] is True
    assert report["version"] and report["clients"] == 0 and report["uptimeS"] >= 0
    assert report["plugins"] == [] and report["queueDepth"] == 0
    assert "no plugins registered" in run_cli(home, "plugins").stdout
    assert "the command queue is empty" in run_cli(home, "queue").stdout
    assert (home / "gateway.sock").is_socket()

    again = run_cli(home, "gateway", "start")
    assert again.returncode != 0
    assert f"already running (pid {pid})" in again.stderr
    foreground = run_cli(home, "gateway", "run")
    assert foreground.returncode == 3 and f"already running (pid {pid})" in foreground.stderr

    queued = run_cli(home, "call", "system-event", "--params", '{"text": "before the crash"}')
    assert queued.returncode == 0, queued.stderr
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    down = run_cli(home, "gateway", "status")
    assert down.returncode == 1 and "not running" in down.stdout

    restarted = run_cli(home, "gateway", "start")
    assert restarted.returncode == 0, restarted.stderr + restarted.stdout
    new_pid = recorded_pid(home)
    assert new_pid != pid
    log = (home / "logs" / "gateway.log").read_text()
    assert f"replaced a stale PID file left by pid {pid}" in log
    survived = run_cli(home, "call", "status", "--json")
    events = json.loads(survived.stdout)["queuedSystemEvents"]
    assert [event["text"] for event in events] == ["before the crash"]

    stopped = run_cli(home, "gateway", "stop")
    assert stopped.returncode == 0
    assert f"stopped clawgate gateway (pid {new_pid})" in stopped.stdout
    wait_gone(new_pid)
    assert (home / "gateway.pid").exists() and (home / "gateway.pid").read_text() == ""
    assert "not running" in run_cli(home, "gateway", "stop").stdout


def test_restart_gives_a_new_process(home: Path) -> None:
    assert run_cli(home, "gateway", "start").returncode == 0
    first = recorded_pid(home)
    restarted = run_cli(home, "gateway", "restart")
    assert restarted.returncode == 0, restarted.stderr
    assert f"stopped clawgate gateway (pid {first})" in restarted.stdout
    assert recorded_pid(home) != first


def test_failed_start_prints_the_reason_and_who_holds_the_port(home: Path) -> None:
    port = int((home / "config.toml").read_text().split("= ")[1])
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = run_cli(home, "gateway", "start")
    assert result.returncode == 1
    assert "gateway did not start" in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert f"held by pid {os.getpid()}" in result.stderr


def test_start_fails_when_another_gateway_answers_on_the_port(home: Path, tmp_path: Path) -> None:
    other = start_daemon(tmp_path / "other-home")
    try:
        result = run_cli(home, "gateway", "start", "--port", str(other.port))
    finally:
        stop_daemon(other)
    assert result.returncode == 1, result.stdout
    assert "started" not in result.stdout
    assert "gateway did not start" in result.stderr
    assert "address already in use" in result.stderr.lower()


def test_start_and_status_print_the_webchat_url_and_how_to_get_the_token(home: Path) -> None:
    port = int((home / "config.toml").read_text().split("= ")[1])
    started = run_cli(home, "gateway", "start")
    assert started.returncode == 0, started.stderr
    assert f"WebChat: http://127.0.0.1:{port}/ (`clawgate dashboard`" in started.stdout
    status = run_cli(home, "gateway", "status", COLUMNS="200")
    assert status.returncode == 0, status.stderr
    assert f"http://127.0.0.1:{port}/" in status.stdout
    assert "clawgate dashboard" in status.stdout


def test_restart_refuses_to_replace_a_foreground_gateway(home: Path) -> None:
    foreground = start_daemon(home)
    try:
        result = run_cli(home, "gateway", "restart")
        still_running = foreground.process.poll() is None
    finally:
        stop_daemon(foreground)
    assert result.returncode == 1
    assert "runs in the foreground (`clawgate gateway run`)" in " ".join(result.stderr.split())
    assert still_running


@pytest.mark.parametrize(
    "command",
    [("gateway", "start"), ("gateway", "run"), ("gateway", "restart"), ("hub", "run")],
)
def test_a_port_outside_the_tcp_range_is_refused(home: Path, command: tuple[str, ...]) -> None:
    result = run_cli(home, *command, "--port", "70000", COLUMNS="200")
    assert result.returncode == 2
    assert "Invalid value for '--port'" in result.stderr
    assert "less than or equal to 65535" in result.stderr
    assert not (home / "gateway.run.json").exists()


def test_a_config_port_outside_the_tcp_range_is_refused(home: Path) -> None:
    (home / "config.toml").write_text("[gateway]\nport = 70000\n")
    result = run_cli(home, "gateway", "start")
    assert result.returncode == 2
    assert "gateway.port" in result.stderr
    assert "65535" in result.stderr


def test_bad_config_is_reported_before_starting(home: Path) -> None:
    (home / "config.toml").write_text("[gateway]\nprot = 1\n")
    result = run_cli(home, "gateway", "start")
    assert result.returncode == 2
    assert "config.toml:2: unknown key 'gateway.prot'" in result.stderr


def test_sigterm_drains_within_the_bound(home: Path) -> None:
    assert run_cli(home, "gateway", "start").returncode == 0
    pid = recorded_pid(home)
    began = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid, timeout=10)
    # The drain bound is 2 s; the process must be gone well inside the stop timeout.
    assert time.monotonic() - began < 10


def test_logs_prints_the_last_lines(home: Path) -> None:
    assert run_cli(home, "gateway", "start").returncode == 0
    result = run_cli(home, "gateway", "logs", "-n", "5")
    assert result.returncode == 0 and "gateway ready on" in result.stdout
    assert len(result.stdout.strip().splitlines()) <= 5


def test_logs_follow_streams_new_lines(home: Path) -> None:
    assert run_cli(home, "gateway", "start").returncode == 0
    follower = subprocess.Popen(
        [sys.executable, "-m", "clawgate.cli", "gateway", "logs", "-n", "0", "-f"],
        env=env_for(home),
        stdout=subprocess.PIPE,
    )
    try:
        time.sleep(0.5)
        run_cli(home, "call", "health")
        deadline = time.monotonic() + 10
        assert follower.stdout is not None
        fd = follower.stdout.fileno()
        seen = b""
        while b"connected cli/cli" not in seen and time.monotonic() < deadline:
            readable, _, _ = select.select([fd], [], [], 0.2)
            if readable:
                seen += os.read(fd, 65536)
        assert b"connected cli/cli" in seen
    finally:
        follower.terminate()
        follower.wait(timeout=5)


def test_config_with_loose_permissions_is_refused(home: Path) -> None:
    (home / "config.toml").chmod(0o644)
    result = run_cli(home, "gateway", "run")
    assert result.returncode == 2
    assert "chmod 600" in result.stderr


def test_secrets_never_reach_logs_or_the_database(home: Path) -> None:
    password = "pw-that-must-stay-secret-7731"
    api_key = "ak-that-must-stay-secret-9917"
    wrong = "wrong-guess-that-must-stay-secret-4242"
    config = home / "config.toml"
    config.write_text(
        config.read_text()
        + f'\n[gateway.auth]\nmode = "password"\npassword = "{password}"\n'
        + f'\n[auth]\napi_key = "{api_key}"\n'
    )
    assert run_cli(home, "gateway", "start").returncode == 0
    assert run_cli(home, "call", "health").returncode == 0
    assert run_cli(home, "call", "config.get").returncode == 0
    patch = '{"log": {"level": "debug"}}'
    assert (
        run_cli(home, "call", "config.patch", "--params", json.dumps({"raw": patch})).returncode
        == 0
    )
    assert run_cli(home, "call", "system-event", "--params", '{"text": "hello"}').returncode == 0
    refused = run_cli(home, "call", "health", CLAWGATE_GATEWAY_PASSWORD=wrong)
    assert refused.returncode == 1 and "AUTH_PASSWORD_MISMATCH" in refused.stderr
    token_run = run_cli(home, "call", "health", "--token", wrong)
    assert token_run.returncode == 1
    assert run_cli(home, "gateway", "stop").returncode == 0
    files = [p for p in home.rglob("*") if p.is_file() and p.name != "config.toml"]
    assert any(p.name == "state.db" for p in files) and any(p.name == "gateway.log" for p in files)
    for path in files:
        data = path.read_bytes()
        for secret in (password, api_key, wrong):
            assert secret.encode() not in data, f"{secret} found in {path}"


def test_doctor_against_a_running_gateway_and_a_broken_config(home: Path) -> None:
    assert run_cli(home, "gateway", "start").returncode == 0
    healthy = run_cli(home, "doctor", "--json")
    assert healthy.returncode == 0, healthy.stdout
    checks = {check["name"]: check for check in json.loads(healthy.stdout)}
    assert checks["gateway"]["status"] == "ok" and checks["port"]["status"] == "ok"
    assert checks["state.db"]["status"] == "ok" and "intact" in checks["state.db"]["message"]
    assert checks["ipc socket"]["status"] == "ok"
    good = (home / "config.toml").read_text()
    (home / "config.toml").write_text("[gateway]\nbogus = 1\n")
    broken = run_cli(home, "doctor")
    (home / "config.toml").write_text(good)  # so the fixture's `gateway stop` can read it
    assert broken.returncode == 1 and "unknown key" in broken.stdout
