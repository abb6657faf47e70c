"""`gateway run`'s own option reader agrees with its typer command, or leaves it to typer."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import typer.main

from clawgate.cli import gateway
from clawgate.cli.gateway_run import OPTIONS, parse_run_options


def _typer_params(argv: list[str]) -> dict[str, object]:
    """Return the values the typer `gateway run` command parses from `argv`."""
    group = typer.main.get_command(gateway.app)
    command = group.commands["run"]  # type: ignore[attr-defined]
    with command.make_context("run", list(argv)) as context:
        return dict(context.params)


def test_both_readers_know_the_same_options() -> None:
    group = typer.main.get_command(gateway.app)
    command = group.commands["run"]  # type: ignore[attr-defined]
    names = {name for param in command.params for name in param.opts if name != "--help"}
    assert names == set(OPTIONS)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--port", "18789", "--auth", "token", "--token", "T0k3n"],
        ["--port=0", "--bind=lan", "--auth=password", "--password=p=w"],
        ["--auth", "none", "--log-format", "json", "--port", "08"],
        ["--token", "a b", "--port", "65535"],
    ],
)
def test_a_plain_command_line_gets_the_values_typer_would_give(argv: list[str]) -> None:
    parsed = parse_run_options(argv)
    assert parsed is not None
    assert {**asdict(parsed.overrides), "log_format": parsed.log_format} == _typer_params(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--bogus"],
        ["extra"],
        ["--port"],
        ["--port", "-1"],
        ["--port", "65536"],
        ["--port", "+5"],
        ["--port", "٣"],
        ["--auth", "TOKEN"],
        ["--token", ""],
        ["--token", "--port"],
        ["--port", "1", "--port", "2"],
        ["--", "--port", "1"],
    ],
)
def test_any_other_command_line_is_left_to_typer(argv: list[str]) -> None:
    assert parse_run_options(argv) is None


def test_a_plain_gateway_run_never_loads_typer(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[gateway]\nport = "x"\n')
    (tmp_path / "config.toml").chmod(0o600)
    code = (
        "import sys\n"
        "sys.argv = ['clawgate', 'gateway', 'run', '--port', '1', '--auth', 'none']\n"
        "from clawgate.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    print(exc.code)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('typer', 'click'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"CLAWGATE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert "invalid value for 'gateway.port'" in done.stderr
    assert done.stdout.splitlines() == ["2", "[]"]
