"""systemd's notify protocol from a real gateway process to a real datagram socket."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

from tests.e2e.test_cli import CLAWGATE, env_for, free_port


def test_ready_watchdog_pings_and_stopping_reach_the_notify_socket(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(str(tmp_path / "notify.sock"))
        notify.settimeout(20)
        process = subprocess.Popen(
            [*CLAWGATE, "gateway", "run", "--port", str(free_port())],
            # A 0.2 s watchdog: pings every 0.1 s, so several arrive within the test.
            env=env_for(home, NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="200000"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            first = notify.recv(4096).decode()
            assert first.startswith("READY=1\nSTATUS=serving on ws://127.0.0.1:")
            run_state = (home / "gateway.run.json").read_text()
            assert f'"pid": {process.pid}' in run_state  # ready means serving
            pings = [notify.recv(4096) for _ in range(3)]
            assert pings == [b"WATCHDOG=1"] * 3
            process.send_signal(signal.SIGTERM)
            rest = []
            while b"STOPPING=1" not in rest:
                rest.append(notify.recv(4096))
            assert set(rest) <= {b"WATCHDOG=1", b"STOPPING=1"}
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_abstract_notify_socket_gets_ready(tmp_path: Path) -> None:
    name = f"clawgate-test-{free_port()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind("\0" + name)
        notify.settimeout(20)
        process = subprocess.Popen(
            [*CLAWGATE, "gateway", "run", "--port", str(free_port())],
            env=env_for(tmp_path / "home", NOTIFY_SOCKET="@" + name),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert notify.recv(4096).startswith(b"READY=1")
            process.send_signal(signal.SIGTERM)
            assert notify.recv(4096) == b"STOPPING=1"
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
