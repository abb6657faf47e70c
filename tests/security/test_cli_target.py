"""The CLI sends credentials only to the gateway or hub its home runs (issue 17 point 7)."""

from __future__ import annotations

import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from clawgate.service.runstate import RunState, write_run_state
from tests.e2e.test_cli import CLAWGATE, env_for, run_cli, start_daemon, stop_daemon


class Impostor:
    """Whatever else listens on a port: records every byte it is sent, answers like a server."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.received = bytearray()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.received += conn.recv(65536)
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b'Content-Length: 15\r\nConnection: close\r\n\r\n{"ready": true}'
                    )
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def impostor() -> Iterator[Impostor]:
    server = Impostor()
    yield server
    server.close()


def _token(home: Path) -> str:
    return (home / "config.toml").read_text().split('token = "')[1].split('"')[0]


def _configure(home: Path, port: int) -> None:
    home.mkdir(mode=0o700, exist_ok=True)
    (home / "config.toml").write_text(
        f'[gateway]\nport = {port}\n\n[gateway.auth]\ntoken = "tok-{"x" * 40}"\n'
    )
    (home / "config.toml").chmod(0o600)


def test_the_running_gateway_records_its_actual_port_in_a_private_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    daemon = start_daemon(home)
    try:
        state_file = home / "gateway.run.json"
        assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
        state = orjson.loads(state_file.read_bytes())
        assert state["port"] == daemon.port and state["pid"] == daemon.process.pid
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as probe:
            probe.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = probe.makefile("rb").read()
        assert state["bootId"].encode() in answer
        assert state["identityKey"].encode() not in answer
    finally:
        stop_daemon(daemon)
    assert not (home / "gateway.run.json").exists()


def test_call_without_url_finds_a_gateway_on_another_port_than_configured(
    tmp_path: Path, impostor: Impostor
) -> None:
    home = tmp_path / "home"
    _configure(home, impostor.port)
    daemon = start_daemon(home)  # --port overrides the configured (impostor's) port
    try:
        health = run_cli(home, "call", "health", "--json")
        assert health.returncode == 0, health.stderr
        assert b"tok-" not in impostor.received
    finally:
        stop_daemon(daemon)


def test_gateway_status_reports_the_port_it_runs_on_and_sends_no_token_elsewhere(
    tmp_path: Path, impostor: Impostor
) -> None:
    home = tmp_path / "home"
    _configure(home, impostor.port)
    daemon = start_daemon(home)  # --port overrides the configured (impostor's) port
    try:
        status = run_cli(home, "gateway", "status", "--json")
        assert status.returncode == 0, status.stderr
        report = orjson.loads(status.stdout)
        assert report["url"] == f"ws://127.0.0.1:{daemon.port}/"
        assert report["ready"] is True and report["version"]
        assert b"tok-" not in impostor.received
    finally:
        stop_daemon(daemon)


def test_no_gateway_running_sends_nothing_to_the_configured_port(
    tmp_path: Path, impostor: Impostor
) -> None:
    home = tmp_path / "home"
    _configure(home, impostor.port)
    for command in (["call", "health"], ["status"], ["devices", "list"]):
        result = run_cli(home, *command)
        assert result.returncode == 2, result.stderr
        assert "no gateway running in CLAWGATE_HOME" in result.stderr
        assert "start it or pass --url" in result.stderr
    assert impostor.received == b""


def test_a_server_that_cannot_prove_itself_gets_no_token(
    tmp_path: Path, impostor: Impostor
) -> None:
    home = tmp_path / "home"
    _configure(home, impostor.port)
    # A state file naming a live process (this test's) and the impostor's port: as after a
    # gateway died and something else took its port, with the pid reused.
    write_run_state(home / "gateway.run.json", _state_at(impostor.port))
    result = run_cli(home, "call", "health")
    assert result.returncode == 2
    assert "not the gateway that wrote the state file" in result.stderr
    assert b"/readyz" in impostor.received  # only the challenge went there
    assert b"tok-" not in impostor.received
    assert b"Upgrade" not in impostor.received


def test_a_stale_state_file_from_a_dead_gateway_sends_nothing(
    tmp_path: Path, impostor: Impostor
) -> None:
    home = tmp_path / "home"
    _configure(home, impostor.port)
    write_run_state(home / "gateway.run.json", replace(_state_at(impostor.port), pid=_dead_pid()))
    result = run_cli(home, "call", "health")
    assert result.returncode == 2 and "has exited" in result.stderr
    assert impostor.received == b""


def _state_at(port: int) -> RunState:
    return RunState.new(
        "gateway", url=f"ws://127.0.0.1:{port}/", port=port, boot_id="b", started_ms=0
    )


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_hub_cli_sends_the_admin_token_only_to_its_hub(tmp_path: Path, impostor: Impostor) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    hub_toml = home / "hub.toml"
    hub_toml.write_text(f'listen = "127.0.0.1:{impostor.port}"\nadmin_token = "{"a" * 32}"\n')
    hub_toml.chmod(0o600)
    refused = run_cli(home, "hub", "keys", "create", "--label", "x")
    assert refused.returncode == 2
    assert "no hub running in CLAWGATE_HOME" in refused.stderr
    assert impostor.received == b""
    hub = subprocess.Popen(
        [*CLAWGATE, "hub", "run", "--port", "0"],
        env=env_for(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (home / "hub.run.json").exists():
            assert hub.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        created = run_cli(home, "hub", "keys", "create", "--label", "x", "--json")
        assert created.returncode == 0, created.stderr
        assert impostor.received == b""
    finally:
        hub.terminate()
        hub.wait(timeout=30)
    assert not (home / "hub.run.json").exists()
