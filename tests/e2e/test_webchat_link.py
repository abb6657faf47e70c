"""The WebChat link `clawgate gateway run` prints: the token only on a terminal, never in files.

Printing the token is a deliberate, documented exception to "never print a secret": the
link with `#token=…` goes to the terminal of the user who started the gateway, and only
there. Redirected output (pipes, `gateway start`'s stdout log, a service journal) gets the
plain URL.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path

from tests.e2e.test_cli import CLAWGATE, env_for, free_port, run_cli, start_daemon, stop_daemon
from tests.e2e.test_daemon import configure

TOKEN = "webchat-link-token-0123456789"


def read_until(fd: int, marker: bytes, timeout: float = 20) -> bytes:
    """Read from a pty master until `marker` shows up."""
    output = b""
    deadline = time.monotonic() + timeout
    while marker not in output:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} in {output!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
    return output


def test_a_terminal_gets_the_link_with_the_token_and_nothing_else_does(tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = free_port()
    master, slave = os.openpty()
    process = subprocess.Popen(
        [*CLAWGATE, "gateway", "run", "--port", str(port)],
        env=env_for(home, CLAWGATE_GATEWAY_TOKEN=TOKEN),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=subprocess.PIPE,
    )
    os.close(slave)
    try:
        banner = read_until(master, b"auth:").decode()
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=15)
        os.close(master)
    lines = [line for line in banner.splitlines() if TOKEN in line]
    assert lines == [f"  WebChat: http://127.0.0.1:{port}/#token={TOKEN}"]
    assert TOKEN not in errors.decode()
    for path in (home / "logs").iterdir():
        assert TOKEN not in path.read_text(), f"token found in {path}"


def test_piped_output_gets_the_plain_link(tmp_path: Path) -> None:
    running = start_daemon(tmp_path / "home", CLAWGATE_GATEWAY_TOKEN=TOKEN)
    code, output = stop_daemon(running)
    assert code == 0
    assert f"WebChat: http://127.0.0.1:{running.port}/ (the page asks for the token)" in output
    assert TOKEN not in output


def test_gateway_start_keeps_the_token_out_of_its_stdout_log(tmp_path: Path) -> None:
    home = tmp_path / "home"
    configure(home, free_port())
    try:
        started = run_cli(home, "gateway", "start", CLAWGATE_GATEWAY_TOKEN=TOKEN)
        assert started.returncode == 0, started.stderr + started.stdout
        assert TOKEN not in started.stdout + started.stderr
    finally:
        run_cli(home, "gateway", "stop")
    stdout_log = home / "logs" / "gateway.stdout.log"
    assert "WebChat: http://" in stdout_log.read_text()
    for path in (home / "logs").iterdir():
        assert TOKEN not in path.read_text(), f"token found in {path}"
