"""The CLI as a script sees it: one exit-code table, JSON errors with `--json`, no internals."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer

from clawgate.cli.main import app
from tests.e2e.test_cli import Daemon, free_port, run_cli, start_daemon, stop_daemon

LIBRARY_WORDS = ("Traceback", "ClientConnectorError", "ssl:default", "aiohttp", "Errno")


def _leaves(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield path
        return
    for name, sub in subcommands.items():
        yield from _leaves(sub, (*path, name))


def _first_leaf_per_group() -> list[tuple[str, ...]]:
    firsts: dict[str, tuple[str, ...]] = {}
    for leaf in _leaves(typer.main.get_command(app)):
        firsts.setdefault(leaf[0], leaf)
    return list(firsts.values())


#: One command per group that needs a running gateway (or hub) to answer.
NEEDS_A_GATEWAY = [
    ("call", "health"),
    ("health",),
    ("status",),
    ("chat", "hello"),
    ("agent", "hello"),
    ("plugins",),
    ("queue",),
    ("devices", "list"),
    ("cron", "list"),
    ("nodes", "list"),
    ("approvals", "list"),
    ("channels", "status"),
    ("pairing", "list"),
    ("message", "send", "--channel", "telegram", "--to", "1", "hi"),
]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = start_daemon(tmp_path / "gateway-home")
    yield running
    stop_daemon(running)


def _json_error(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    document = json.loads(lines[0])
    assert set(document) == {"error"} and set(document["error"]) == {"code", "message"}
    assert not any(word in result.stdout for word in LIBRARY_WORDS), result.stdout
    return dict(document["error"])


@pytest.mark.parametrize("command", _first_leaf_per_group(), ids=" ".join)
def test_a_bad_option_is_a_json_usage_error_with_exit_2(home: Path, command: tuple[str]) -> None:
    result = run_cli(home, *command, "--no-such-option", "--json")
    assert result.returncode == 2
    error = _json_error(result)
    assert error["code"] == "USAGE"
    assert "--no-such-option" in error["message"] and "--help`" in error["message"]


def test_a_bad_option_without_json_is_one_line_on_stderr(home: Path) -> None:
    result = run_cli(home, "gateway", "start", "--no-such-option")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: No such option: --no-such-option. See `clawgate gateway start --help`."
    ]


@pytest.mark.parametrize("command", NEEDS_A_GATEWAY, ids=" ".join)
def test_no_gateway_is_a_json_unreachable_error_with_exit_2(
    home: Path, command: tuple[str]
) -> None:
    result = run_cli(home, *command, "--json")
    assert result.returncode == 2
    error = _json_error(result)
    assert error["code"] == "UNREACHABLE" and "no gateway running" in error["message"]


def test_a_refused_call_exits_1_with_the_gateways_code(daemon: Daemon) -> None:
    result = run_cli(daemon.home, "call", "no.such", "--url", daemon.url, "--json")
    assert result.returncode == 1
    assert _json_error(result)["code"] == "INVALID_REQUEST"


def test_a_second_foreground_gateway_exits_3_already_running(daemon: Daemon) -> None:
    result = run_cli(daemon.home, "gateway", "run", "--port", str(free_port()))
    assert result.returncode == 3 and "already running" in result.stderr


def test_a_closed_port_says_connection_refused_and_how_to_start(home: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        result = run_cli(home, "call", "health", "--url", f"ws://127.0.0.1:{port}/")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == (
        f"error: cannot reach the gateway at ws://127.0.0.1:{port}/: connection refused; "
        "is it running? `clawgate gateway start` (or check --url)"
    )


def test_wss_to_a_plain_gateway_says_the_tls_handshake_failed(daemon: Daemon) -> None:
    url = f"wss://127.0.0.1:{daemon.port}/"
    result = run_cli(daemon.home, "call", "health", "--url", url, "--json")
    assert result.returncode == 2
    error = _json_error(result)
    assert error == {
        "code": "UNREACHABLE",
        "message": f"cannot reach the gateway at {url}: the TLS handshake failed; "
        "use wss:// for a gateway with [gateway.tls] enabled and ws:// otherwise",
    }


def test_ws_to_a_tls_gateway_says_to_use_wss(tmp_path: Path) -> None:
    home = tmp_path / "tls-home"
    home.mkdir(mode=0o700)
    config = home / "config.toml"
    config.write_text("[gateway.tls]\nenabled = true\n")
    config.chmod(0o600)
    daemon = start_daemon(home)
    try:
        url = f"ws://127.0.0.1:{daemon.port}/"
        result = run_cli(home, "call", "health", "--url", url)
    finally:
        stop_daemon(daemon)
    assert result.returncode == 2 and result.stdout == ""
    message = result.stderr.strip()
    assert message.startswith(f"error: cannot reach the gateway at {url}: ")
    assert "wss://" in message
    assert not any(word in message for word in LIBRARY_WORDS), message


def _every_command(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _every_command(sub, (*path, name))


def test_no_help_page_shows_a_type_on_a_flag() -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    pages = list(_every_command(typer.main.get_command(app)))
    assert len(pages) > 60
    for path in pages:
        result = runner.invoke(app, [*path, "--help"], prog_name="clawgate", env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "--help" in result.output and "<bool>" not in result.output, (path, result.output)


def test_config_get_of_a_mistyped_key_suggests_the_key(home: Path) -> None:
    result = run_cli(home, "config", "get", "gateway.prot")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: unknown key 'gateway.prot'; did you mean gateway.port?"


def test_config_set_of_a_mistyped_key_suggests_the_key_and_writes_nothing(home: Path) -> None:
    result = run_cli(home, "config", "set", "gatewy.port", "18790")
    assert result.returncode == 2
    assert "did you mean gateway.port?" in result.stderr
    assert not (home / "config.toml").exists()


def test_a_mistyped_command_suggests_the_command(home: Path) -> None:
    result = run_cli(home, "gatway", "status", "--json")
    assert result.returncode == 2
    assert "Did you mean 'gateway'?" in _json_error(result)["message"]


REFUSED_CONFIGS = {
    "readable by others": ("[gateway]\nport = 0\n", 0o644),
    "lan without auth": (
        '[gateway]\nport = 0\nbind = "lan"\n[gateway.auth]\nmode = "none"\n',
        0o600,
    ),
    "password mode without a password": (
        '[gateway]\nport = 0\n[gateway.auth]\nmode = "password"\n',
        0o600,
    ),
}


@pytest.mark.parametrize("case", REFUSED_CONFIGS)
def test_config_validate_refuses_what_gateway_run_refuses_with_its_message(
    home: Path, case: str
) -> None:
    text, mode = REFUSED_CONFIGS[case]
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text(text)
    (home / "config.toml").chmod(mode)
    validate = run_cli(home, "config", "validate")
    run = run_cli(home, "gateway", "run")
    assert validate.returncode == run.returncode == 2
    assert validate.stderr.strip() and validate.stderr == run.stderr
    assert (home / "config.toml").read_text() == text  # validate wrote nothing


def test_config_validate_of_a_fresh_home_writes_nothing(home: Path) -> None:
    result = run_cli(home, "config", "validate")
    assert result.returncode == 0, result.stderr
    assert not (home / "config.toml").exists()


#: Read-only commands with both a human and a `--json` form.
READ_COMMANDS = [
    ("status",),
    ("health",),
    ("gateway", "status"),
    ("doctor",),
    ("devices", "list"),
    ("cron", "list"),
    ("cron", "status"),
    ("nodes", "list"),
    ("nodes", "pending"),
    ("approvals", "list"),
    ("channels", "list"),
    ("channels", "status"),
    ("pairing", "list"),
    ("plugins",),
    ("queue",),
    ("integrations",),
]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def test_with_json_stdout_is_one_json_document_and_stderr_is_empty(daemon: Daemon) -> None:
    for command in READ_COMMANDS:
        result = run_cli(daemon.home, *command, "--json")
        assert result.returncode == 0, (command, result.stderr)
        assert result.stderr == "" and _is_json(result.stdout), (command, result.stdout)


def test_without_json_stdout_is_not_json(daemon: Daemon) -> None:
    for command in READ_COMMANDS:
        result = run_cli(daemon.home, *command, COLUMNS="200")
        assert result.returncode == 0, (command, result.stderr)
        assert result.stdout.strip() and not _is_json(result.stdout), (command, result.stdout)
        assert not result.stdout.lstrip().startswith(("{", "[")), (command, result.stdout)
