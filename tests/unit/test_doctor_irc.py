"""`clawgate doctor` on an IRC account: no password needed, the server's port probed."""

from __future__ import annotations

import socket
from pathlib import Path

from clawgate.service.doctor import DoctorProbes, Status, run_checks
from clawgate.service.paths import Paths


def irc_check(tmp_path: Path, port: int) -> tuple[Status, str]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    config = home / "config.toml"
    config.write_text(
        f'[gateway]\nport = 18789\n[channels.irc]\nserver = "127.0.0.1"\nport = {port}\n'
    )
    config.chmod(0o600)
    probes = DoctorProbes(port_holder=lambda p: None, http_ok=lambda url, context: False)
    [check] = [r for r in run_checks(Paths(home), probes) if r.name == "channel irc/default"]
    return check.status, check.message


def test_a_reachable_irc_server_without_a_password_passes(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        status, message = irc_check(tmp_path, listener.getsockname()[1])
    assert (status, message) == (Status.OK, "server reachable")


def test_an_unreachable_irc_server_fails_naming_it(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connections are refused
        status, message = irc_check(tmp_path, port)
    assert status is Status.FAIL and f"127.0.0.1:{port}" in message
