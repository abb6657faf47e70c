"""ServiceInstaller with a recording runner: files written, manager commands run (spec §1.5)."""

import plistlib
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from clawgate.service.installer import (
    CommandResult,
    ServiceError,
    ServiceInstaller,
    subprocess_runner,
)
from clawgate.service.units import ServiceSpec, render_launchd_plist, render_systemd_unit

UID = 501
Argv = tuple[str, ...]
Answers = dict[Argv, CommandResult]
IS_RUNNING: Argv = ("systemctl", "--user", "is-system-running")
RELOAD: Argv = ("systemctl", "--user", "daemon-reload")
ENABLE: Argv = ("systemctl", "--user", "enable", "--now", "clawgate-gateway.service")
DISABLE: Argv = ("systemctl", "--user", "disable", "--now", "clawgate-gateway.service")
TRY_RESTART: Argv = ("systemctl", "--user", "try-restart", "clawgate-gateway.service")
LAUNCHD_PRINT: Argv = ("launchctl", "print", "gui/501/dev.clawgate.gateway")
BOOTOUT: Argv = ("launchctl", "bootout", "gui/501/dev.clawgate.gateway")
ENABLE_LATER = (
    "systemd user manager not reachable; enable later with: "
    "systemctl --user daemon-reload && systemctl --user enable --now clawgate-gateway.service"
)


class FakeRunner:
    """Records every argv and answers from a table (exit 0 with no output by default)."""

    def __init__(self, answers: Answers | None = None) -> None:
        self.answers = dict(answers or {})
        self.calls: list[Argv] = []

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        call = tuple(argv)
        self.calls.append(call)
        return self.answers.get(call, CommandResult(0))


RUNNING: Answers = {IS_RUNNING: CommandResult(0, "running\n")}
OFFLINE: Answers = {IS_RUNNING: CommandResult(1, "offline\n")}
NOT_LOADED: Answers = {LAUNCHD_PRINT: CommandResult(113, "", "Could not find service")}


@pytest.fixture
def user_home(tmp_path: Path) -> Path:
    home = tmp_path / "user"
    home.mkdir()
    return home


def make_spec(tmp_path: Path, program: str = "/opt/venv/bin/clawgate") -> ServiceSpec:
    return ServiceSpec((program,), tmp_path / "claw home", home_is_default=False)


def unit_file(user_home: Path) -> Path:
    return user_home / ".config/systemd/user/clawgate-gateway.service"


def plist_file(user_home: Path) -> Path:
    return user_home / "Library/LaunchAgents/dev.clawgate.gateway.plist"


def tree(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


# -- systemd ---------------------------------------------------------------------------------


def test_systemd_install_writes_unit_then_reloads_and_enables(
    tmp_path: Path, user_home: Path
) -> None:
    runner = FakeRunner(RUNNING)
    spec = make_spec(tmp_path)
    report = ServiceInstaller("linux", user_home, runner, UID).install(spec)
    path = unit_file(user_home)
    assert path.read_text() == render_systemd_unit(spec) == report.content
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert runner.calls == [IS_RUNNING, RELOAD, ENABLE]
    assert report.activated
    assert report.path == path
    assert any("loginctl enable-linger $USER" in line for line in report.lines)


def test_systemd_install_leaves_no_temporary_file(tmp_path: Path, user_home: Path) -> None:
    ServiceInstaller("linux", user_home, FakeRunner(RUNNING), UID).install(make_spec(tmp_path))
    assert list(unit_file(user_home).parent.iterdir()) == [unit_file(user_home)]


def test_systemd_degraded_manager_still_enables(tmp_path: Path, user_home: Path) -> None:
    runner = FakeRunner({IS_RUNNING: CommandResult(1, "degraded\n")})
    report = ServiceInstaller("linux", user_home, runner, UID).install(make_spec(tmp_path))
    assert runner.calls == [IS_RUNNING, RELOAD, ENABLE]
    assert report.activated


def test_systemd_unreachable_writes_unit_and_says_how_to_enable(
    tmp_path: Path, user_home: Path
) -> None:
    runner = FakeRunner(OFFLINE)
    spec = make_spec(tmp_path)
    report = ServiceInstaller("linux", user_home, runner, UID).install(spec)
    assert unit_file(user_home).read_text() == render_systemd_unit(spec)
    assert runner.calls == [IS_RUNNING]
    assert not report.activated
    assert ENABLE_LATER in report.lines
    assert any("loginctl enable-linger" in line for line in report.lines)


def test_systemd_without_systemctl_is_unreachable(tmp_path: Path, user_home: Path) -> None:
    runner = FakeRunner({IS_RUNNING: CommandResult(127, "", "systemctl: command not found")})
    report = ServiceInstaller("linux", user_home, runner, UID).install(make_spec(tmp_path))
    assert unit_file(user_home).exists()
    assert runner.calls == [IS_RUNNING]
    assert ENABLE_LATER in report.lines


def test_systemd_enable_failure_is_an_error_naming_the_file(
    tmp_path: Path, user_home: Path
) -> None:
    runner = FakeRunner({**RUNNING, ENABLE: CommandResult(1, "", "Failed to enable unit: boom")})
    installer = ServiceInstaller("linux", user_home, runner, UID)
    with pytest.raises(ServiceError, match="Failed to enable unit: boom") as caught:
        installer.install(make_spec(tmp_path))
    assert str(unit_file(user_home)) in str(caught.value)
    assert unit_file(user_home).exists()


def test_systemd_reinstall_with_changed_unit_restarts_before_enable(
    tmp_path: Path, user_home: Path
) -> None:
    installer = ServiceInstaller("linux", user_home, FakeRunner(RUNNING), UID)
    installer.install(make_spec(tmp_path, "/old/venv/bin/clawgate"))
    runner = FakeRunner(RUNNING)
    ServiceInstaller("linux", user_home, runner, UID).install(make_spec(tmp_path))
    assert runner.calls == [IS_RUNNING, RELOAD, TRY_RESTART, ENABLE]


def test_systemd_reinstall_unchanged_does_not_restart(tmp_path: Path, user_home: Path) -> None:
    ServiceInstaller("linux", user_home, FakeRunner(RUNNING), UID).install(make_spec(tmp_path))
    runner = FakeRunner(RUNNING)
    ServiceInstaller("linux", user_home, runner, UID).install(make_spec(tmp_path))
    assert runner.calls == [IS_RUNNING, RELOAD, ENABLE]


def test_systemd_uninstall_disables_removes_and_reloads(tmp_path: Path, user_home: Path) -> None:
    spec = make_spec(tmp_path)
    ServiceInstaller("linux", user_home, FakeRunner(RUNNING), UID).install(spec)
    runner = FakeRunner(RUNNING)
    report = ServiceInstaller("linux", user_home, runner, UID).uninstall()
    assert runner.calls == [IS_RUNNING, DISABLE, RELOAD]
    assert not unit_file(user_home).exists()
    assert report.activated
    assert report.content == render_systemd_unit(spec)


def test_systemd_uninstall_when_unreachable_only_removes_file(
    tmp_path: Path, user_home: Path
) -> None:
    ServiceInstaller("linux", user_home, FakeRunner(OFFLINE), UID).install(make_spec(tmp_path))
    runner = FakeRunner(OFFLINE)
    report = ServiceInstaller("linux", user_home, runner, UID).uninstall()
    assert runner.calls == [IS_RUNNING]
    assert not unit_file(user_home).exists()
    assert not report.activated


def test_systemd_uninstall_ignores_disable_failure(tmp_path: Path, user_home: Path) -> None:
    ServiceInstaller("linux", user_home, FakeRunner(OFFLINE), UID).install(make_spec(tmp_path))
    runner = FakeRunner({**RUNNING, DISABLE: CommandResult(1, "", "Unit not loaded")})
    report = ServiceInstaller("linux", user_home, runner, UID).uninstall()
    assert runner.calls == [IS_RUNNING, DISABLE, RELOAD]
    assert not unit_file(user_home).exists()
    assert not report.activated


def test_systemd_uninstall_without_unit_succeeds(user_home: Path) -> None:
    report = ServiceInstaller("linux", user_home, FakeRunner(OFFLINE), UID).uninstall()
    assert report.content == ""
    assert tree(user_home) == []


# -- launchd ---------------------------------------------------------------------------------


def test_launchd_install_writes_plist_and_bootstraps(tmp_path: Path, user_home: Path) -> None:
    runner = FakeRunner(NOT_LOADED)
    spec = make_spec(tmp_path)
    report = ServiceInstaller("darwin", user_home, runner, UID).install(spec)
    path = plist_file(user_home)
    assert path.read_bytes() == render_launchd_plist(spec)
    assert plistlib.loads(path.read_bytes())["Label"] == "dev.clawgate.gateway"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert runner.calls == [LAUNCHD_PRINT, ("launchctl", "bootstrap", "gui/501", str(path))]
    assert report.activated


def test_launchd_install_creates_the_stdout_log_directory(tmp_path: Path, user_home: Path) -> None:
    spec = make_spec(tmp_path)
    ServiceInstaller("darwin", user_home, FakeRunner(NOT_LOADED), UID).install(spec)
    assert stat.S_IMODE((spec.home / "logs").stat().st_mode) == 0o700


def test_launchd_install_boots_out_a_loaded_agent_first(tmp_path: Path, user_home: Path) -> None:
    runner = FakeRunner()
    ServiceInstaller("darwin", user_home, runner, UID).install(make_spec(tmp_path))
    bootstrap = ("launchctl", "bootstrap", "gui/501", str(plist_file(user_home)))
    assert runner.calls == [LAUNCHD_PRINT, BOOTOUT, bootstrap]


def test_launchd_bootstrap_failure_is_an_error(tmp_path: Path, user_home: Path) -> None:
    bootstrap: Argv = ("launchctl", "bootstrap", "gui/501", str(plist_file(user_home)))
    runner = FakeRunner({**NOT_LOADED, bootstrap: CommandResult(5, "", "Bootstrap failed: 5")})
    with pytest.raises(ServiceError, match="Bootstrap failed: 5"):
        ServiceInstaller("darwin", user_home, runner, UID).install(make_spec(tmp_path))


def test_launchd_without_launchctl_writes_plist_and_says_how(
    tmp_path: Path, user_home: Path
) -> None:
    runner = FakeRunner({LAUNCHD_PRINT: CommandResult(127)})
    report = ServiceInstaller("darwin", user_home, runner, UID).install(make_spec(tmp_path))
    assert plist_file(user_home).exists()
    assert runner.calls == [LAUNCHD_PRINT]
    assert not report.activated
    assert any("launchctl bootstrap gui/501" in line for line in report.lines)


def test_launchd_uninstall_boots_out_and_removes(tmp_path: Path, user_home: Path) -> None:
    ServiceInstaller("darwin", user_home, FakeRunner(NOT_LOADED), UID).install(make_spec(tmp_path))
    runner = FakeRunner()
    report = ServiceInstaller("darwin", user_home, runner, UID).uninstall()
    assert runner.calls == [BOOTOUT]
    assert not plist_file(user_home).exists()
    assert report.activated


def test_launchd_uninstall_of_unloaded_agent_still_removes(tmp_path: Path, user_home: Path) -> None:
    ServiceInstaller("darwin", user_home, FakeRunner(NOT_LOADED), UID).install(make_spec(tmp_path))
    runner = FakeRunner({BOOTOUT: CommandResult(3, "", "No such process")})
    report = ServiceInstaller("darwin", user_home, runner, UID).uninstall()
    assert not plist_file(user_home).exists()
    assert not report.activated


# -- dry run, platforms, installed unit ------------------------------------------------------


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_dry_run_install_touches_nothing(tmp_path: Path, user_home: Path, platform: str) -> None:
    runner = FakeRunner()
    spec = make_spec(tmp_path)
    report = ServiceInstaller(platform, user_home, runner, UID).install(spec, dry_run=True)
    assert runner.calls == []
    assert tree(tmp_path) == [user_home]
    assert report.dry_run
    assert not report.activated
    assert report.content
    assert any(line.startswith("would write") for line in report.lines)


def test_dry_run_install_returns_the_unit(tmp_path: Path, user_home: Path) -> None:
    spec = make_spec(tmp_path)
    installer = ServiceInstaller("linux", user_home, FakeRunner(), UID)
    assert installer.install(spec, dry_run=True).content == render_systemd_unit(spec)


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_dry_run_uninstall_touches_nothing(tmp_path: Path, user_home: Path, platform: str) -> None:
    ServiceInstaller(platform, user_home, FakeRunner(RUNNING), UID).install(make_spec(tmp_path))
    before = tree(tmp_path)
    runner = FakeRunner()
    report = ServiceInstaller(platform, user_home, runner, UID).uninstall(dry_run=True)
    assert runner.calls == []
    assert tree(tmp_path) == before
    assert any(line.startswith("would remove") for line in report.lines)


@pytest.mark.parametrize("platform", ["win32", "freebsd14", "cygwin"])
def test_unsupported_platform_is_a_clear_error(
    tmp_path: Path, user_home: Path, platform: str
) -> None:
    runner = FakeRunner()
    installer = ServiceInstaller(platform, user_home, runner, UID)
    with pytest.raises(ServiceError, match=r"Linux \(systemd\) and macOS \(launchd\)"):
        installer.install(make_spec(tmp_path))
    with pytest.raises(ServiceError, match=r"Linux \(systemd\) and macOS \(launchd\)"):
        installer.uninstall()
    assert installer.installed_unit() is None
    assert runner.calls == []
    assert tree(user_home) == []


def test_unusable_executable_path_is_a_service_error(tmp_path: Path, user_home: Path) -> None:
    installer = ServiceInstaller("linux", user_home, FakeRunner(RUNNING), UID)
    with pytest.raises(ServiceError, match="quotes, backslashes"):
        installer.install(make_spec(tmp_path, '/opt/it"s/clawgate'))
    assert tree(user_home) == []


def test_installed_unit_is_none_before_install(user_home: Path) -> None:
    assert ServiceInstaller("linux", user_home, FakeRunner(), UID).installed_unit() is None


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_installed_unit_matches_same_spec_only(
    tmp_path: Path, user_home: Path, platform: str
) -> None:
    installer = ServiceInstaller(platform, user_home, FakeRunner(RUNNING), UID)
    spec = make_spec(tmp_path)
    installer.install(spec)
    installed = installer.installed_unit()
    assert installed is not None
    assert installed.path.exists()
    assert installed.matches(spec)
    assert not installed.matches(make_spec(tmp_path, "/new/venv/bin/clawgate"))


def test_installed_plist_that_is_not_a_plist_does_not_match(
    tmp_path: Path, user_home: Path
) -> None:
    plist_file(user_home).parent.mkdir(parents=True)
    plist_file(user_home).write_text("<plist")
    installed = ServiceInstaller("darwin", user_home, FakeRunner(), UID).installed_unit()
    assert installed is not None
    assert not installed.matches(make_spec(tmp_path))


# -- default runner --------------------------------------------------------------------------


def test_subprocess_runner_reports_missing_executable_as_127() -> None:
    result = subprocess_runner(["clawgate-no-such-command-xyz", "--help"])
    assert result.returncode == 127
    assert "not found" in result.stderr


def test_subprocess_runner_captures_text_output() -> None:
    result = subprocess_runner([sys.executable, "-c", "import sys; print('out'); sys.exit(3)"])
    assert (result.returncode, result.stdout) == (3, "out\n")
