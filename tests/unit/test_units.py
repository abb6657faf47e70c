"""Service unit rendering: systemd user unit and launchd plist (spec §1.5)."""

import plistlib
import sys
from pathlib import Path

import pytest

from clawgate.service.units import (
    LAUNCHD_LABEL,
    SYSTEMD_UNIT_NAME,
    ServiceSpec,
    default_program,
    launchd_plist_path,
    render_launchd_plist,
    render_systemd_unit,
    systemd_unit_path,
)

EXE = "/opt/venv/bin/clawgate"
HOME = Path("/home/ada/.clawgate")
OTHER_HOME = Path("/srv/clawgate")


def spec(
    program: tuple[str, ...] = (EXE,), home: Path = HOME, unit_type: str = "simple"
) -> ServiceSpec:
    return ServiceSpec(program, home, home_is_default=home == HOME, unit_type=unit_type)


def lines(unit: str) -> list[str]:
    return unit.splitlines()


def test_unit_runs_absolute_executable_with_gateway_run() -> None:
    assert f"ExecStart={EXE} gateway run" in lines(render_systemd_unit(spec()))


def test_unit_restarts_on_failure_after_five_seconds() -> None:
    unit = lines(render_systemd_unit(spec()))
    assert "Restart=on-failure" in unit
    assert "RestartSec=5" in unit


def test_unit_is_wanted_by_default_target() -> None:
    unit = render_systemd_unit(spec())
    assert "[Install]\nWantedBy=default.target\n" in unit


def test_unit_type_defaults_to_simple_and_is_a_parameter() -> None:
    assert "Type=simple" in lines(render_systemd_unit(spec()))
    assert "Type=notify" in lines(render_systemd_unit(spec(unit_type="notify")))


def test_a_notify_unit_lets_the_main_process_notify_and_has_a_watchdog() -> None:
    notify = lines(render_systemd_unit(spec(unit_type="notify")))
    assert "NotifyAccess=main" in notify and "WatchdogSec=30" in notify
    simple = lines(render_systemd_unit(spec()))
    assert not any(line.startswith(("NotifyAccess=", "WatchdogSec=")) for line in simple)


def test_unit_sections_in_order() -> None:
    unit = render_systemd_unit(spec())
    assert unit.index("[Unit]") < unit.index("[Service]") < unit.index("[Install]")
    assert unit.endswith("\n")


def test_default_home_sets_no_environment() -> None:
    assert "Environment" not in render_systemd_unit(spec())


def test_non_default_home_sets_clawgate_home() -> None:
    unit = lines(render_systemd_unit(spec(home=OTHER_HOME)))
    assert "Environment=CLAWGATE_HOME=/srv/clawgate" in unit


def test_path_with_spaces_is_double_quoted() -> None:
    unit = lines(render_systemd_unit(spec(("/Users/Ada Lovelace/venv/bin/clawgate",))))
    assert 'ExecStart="/Users/Ada Lovelace/venv/bin/clawgate" gateway run' in unit


def test_percent_is_doubled_in_executable_and_environment() -> None:
    program = ("/opt/100% pure/bin/python", "-m", "clawgate.cli")
    unit = lines(render_systemd_unit(spec(program, Path("/srv/50%"))))
    assert 'ExecStart="/opt/100%% pure/bin/python" -m clawgate.cli gateway run' in unit
    assert "Environment=CLAWGATE_HOME=/srv/50%%" in unit


def test_dollar_is_doubled_in_arguments_only() -> None:
    # systemd expands $VAR in arguments but not in the executable or in Environment=.
    program = ("/opt/$x/python", "-X", "a$b")
    unit = lines(render_systemd_unit(spec(program, Path("/srv/$h"))))
    assert "ExecStart=/opt/$x/python -X a$$b gateway run" in unit
    assert "Environment=CLAWGATE_HOME=/srv/$h" in unit


def test_quotes_and_backslashes_in_arguments_are_escaped() -> None:
    unit = lines(render_systemd_unit(spec((EXE, 'say "hi"\\now'))))
    assert f'ExecStart={EXE} "say \\"hi\\"\\\\now" gateway run' in unit


def test_environment_with_spaces_quotes_whole_assignment() -> None:
    unit = lines(render_systemd_unit(spec(home=Path("/Users/Ada Lovelace/claw"))))
    assert 'Environment="CLAWGATE_HOME=/Users/Ada Lovelace/claw"' in unit


def test_executable_with_a_quote_is_rejected() -> None:
    with pytest.raises(ValueError, match="quotes, backslashes"):
        render_systemd_unit(spec(('/opt/it"s/clawgate',)))


def test_unit_holds_no_secret_environment() -> None:
    unit = render_systemd_unit(spec(home=OTHER_HOME))
    assert "TOKEN" not in unit
    assert "PASSWORD" not in unit
    assert "API_KEY" not in unit


def test_plist_parses_back_to_expected_agent() -> None:
    agent = plistlib.loads(render_launchd_plist(spec()))
    assert agent == {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": [EXE, "gateway", "run"],
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "StandardOutPath": "/home/ada/.clawgate/logs/gateway.stdout.log",
        "StandardErrorPath": "/home/ada/.clawgate/logs/gateway.stdout.log",
    }


def test_plist_sets_environment_only_for_non_default_home() -> None:
    agent = plistlib.loads(render_launchd_plist(spec(home=OTHER_HOME)))
    assert agent["EnvironmentVariables"] == {"CLAWGATE_HOME": "/srv/clawgate"}
    assert agent["StandardOutPath"] == "/srv/clawgate/logs/gateway.stdout.log"


def test_plist_keeps_paths_with_spaces_as_one_argument() -> None:
    program = ("/Users/Ada Lovelace/venv/bin/python", "-m", "clawgate.cli")
    agent = plistlib.loads(render_launchd_plist(spec(program)))
    assert agent["ProgramArguments"] == [*program, "gateway", "run"]


def test_spec_rejects_relative_program_and_home() -> None:
    with pytest.raises(ValueError, match="absolute"):
        ServiceSpec(("clawgate",), HOME, True)
    with pytest.raises(ValueError, match="absolute"):
        ServiceSpec((EXE,), Path("rel/home"), False)


def test_unit_paths_under_user_home(tmp_path: Path) -> None:
    assert systemd_unit_path(tmp_path) == (
        tmp_path / ".config/systemd/user/clawgate-gateway.service"
    )
    assert systemd_unit_path(tmp_path).name == SYSTEMD_UNIT_NAME
    assert (
        launchd_plist_path(tmp_path) == tmp_path / "Library/LaunchAgents/dev.clawgate.gateway.plist"
    )


def test_default_program_prefers_console_script_next_to_interpreter(tmp_path: Path) -> None:
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    script = python.parent / "clawgate"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert default_program(str(python)) == (str(script),)


def test_default_program_falls_back_to_module(tmp_path: Path) -> None:
    python = tmp_path / "python"
    assert default_program(str(python)) == (str(python), "-m", "clawgate.cli")


def test_default_program_is_absolute_for_this_interpreter() -> None:
    program = default_program()
    assert Path(program[0]).is_absolute()
    assert Path(program[0]).parent == Path(sys.executable).parent
