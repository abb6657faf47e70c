"""Install the gateway as a login service: systemd user unit or launchd agent (spec §1.5).

The service manager is reached only through an injected `Runner`, so tests record the argv
instead of starting anything. A manager that is not reachable (a container or CI job without a
systemd user instance, a macOS SSH session without `launchctl`) is not an error: the file is
written and the report says which commands enable it later. A manager that is reachable and
refuses a command is an error (`ServiceError`), since the user asked for a running service.
"""

from __future__ import annotations

import enum
import logging
import plistlib
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol
from xml.parsers.expat import ExpatError

from ..files import write_atomic
from .units import (
    GATEWAY_SERVICE,
    SYSTEMD_UNIT_NAME,
    ServiceKind,
    ServiceSpec,
    launchd_plist_path,
    render_launchd_plist,
    render_systemd_unit,
    systemd_unit_path,
)

__all__ = [
    "CommandResult",
    "InstallReport",
    "InstalledUnit",
    "Runner",
    "ServiceError",
    "ServiceInstaller",
    "ServiceManager",
    "subprocess_runner",
]

logger = logging.getLogger(__name__)

RUN_TIMEOUT_S: Final = 30
UNIT_FILE_MODE: Final = 0o644
EXIT_TIMEOUT: Final = 124
EXIT_CANNOT_EXECUTE: Final = 126
EXIT_NOT_FOUND: Final = 127

SYSTEMCTL: Final = ("systemctl", "--user")
DAEMON_RELOAD: Final = (*SYSTEMCTL, "daemon-reload")
ENABLE_NOW: Final = (*SYSTEMCTL, "enable", "--now", SYSTEMD_UNIT_NAME)
DISABLE_NOW: Final = (*SYSTEMCTL, "disable", "--now", SYSTEMD_UNIT_NAME)
TRY_RESTART: Final = (*SYSTEMCTL, "try-restart", SYSTEMD_UNIT_NAME)
IS_SYSTEM_RUNNING: Final = (*SYSTEMCTL, "is-system-running")
# `is-system-running` exits non-zero for "degraded" (any failed unit), which still accepts
# enable/start; only these states say whether the manager can take the unit.
_USABLE_STATES: Final = frozenset(
    {"initializing", "starting", "running", "degraded", "maintenance"}
)
ENABLE_LATER: Final = f"{shlex.join(DAEMON_RELOAD)} && {shlex.join(ENABLE_NOW)}"
LINGER_HINT: Final = (
    "to keep the gateway running without an open login session: loginctl enable-linger $USER"
)


class ServiceError(Exception):
    """Boot integration cannot be installed or removed; the message says what to do."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The outcome of one command, like `subprocess.CompletedProcess` with text output."""

    returncode: int
    stdout: str = ""
    stderr: str = ""


class Runner(Protocol):
    """Runs one command to completion and returns its exit status and output."""

    def __call__(self, argv: Sequence[str]) -> CommandResult:
        """Run `argv`; a missing executable is returncode 127, never an exception."""
        ...


def subprocess_runner(argv: Sequence[str]) -> CommandResult:
    """Run `argv` with a 30 s timeout, capturing text output.

    A missing executable returns 127, one that cannot be executed 126 and a timeout 124 (the
    shell's and timeout(1)'s conventions), so callers only ever look at the returncode.
    """
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
        )
    except FileNotFoundError:
        return CommandResult(EXIT_NOT_FOUND, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return CommandResult(EXIT_TIMEOUT, "", f"{argv[0]}: timed out after {RUN_TIMEOUT_S} s")
    except OSError as exc:
        return CommandResult(EXIT_CANNOT_EXECUTE, "", f"{argv[0]}: {exc.strerror or exc}")
    return CommandResult(done.returncode, done.stdout, done.stderr)


class ServiceManager(enum.Enum):
    """The service manager that starts the gateway on one platform."""

    SYSTEMD = "systemd"
    LAUNCHD = "launchd"

    @classmethod
    def for_platform(cls, platform: str) -> ServiceManager | None:
        """Return the manager for a `sys.platform` value, or None when unsupported."""
        if platform.startswith("linux"):
            return cls.SYSTEMD
        if platform == "darwin":
            return cls.LAUNCHD
        return None

    def unit_path(self, user_home: Path, kind: ServiceKind = GATEWAY_SERVICE) -> Path:
        """Return where this manager's unit file lives."""
        if self is ServiceManager.SYSTEMD:
            return systemd_unit_path(user_home, kind)
        return launchd_plist_path(user_home, kind)

    def render(self, spec: ServiceSpec) -> str:
        """Return the unit file this manager needs for `spec`."""
        if self is ServiceManager.SYSTEMD:
            return render_systemd_unit(spec)
        return render_launchd_plist(spec).decode("utf-8")


@dataclass(frozen=True, slots=True)
class InstallReport:
    """What an install or uninstall did (or would do), for printing.

    `activated` is True when the service manager took the action: the service was enabled and
    started (install) or stopped and unloaded (uninstall). `content` is the unit file written,
    or for an uninstall the file that was removed ("" when there was none).
    """

    path: Path
    content: str
    activated: bool
    lines: list[str] = field(default_factory=list)
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class InstalledUnit:
    """A unit file found on disk."""

    manager: ServiceManager
    path: Path
    content: str

    def matches(self, spec: ServiceSpec) -> bool:
        """Return whether the file is exactly what `install(spec)` would write now."""
        try:
            expected = self.manager.render(spec)
        except ValueError:  # a spec systemd cannot express matches no file
            return False
        if self.manager is ServiceManager.LAUNCHD:
            # Compare the parsed property lists: `plutil` may have reformatted a correct file.
            try:
                found = plistlib.loads(self.content.encode("utf-8"))
            except (ValueError, ExpatError):  # InvalidFileException is a ValueError
                return False
            return bool(found == plistlib.loads(expected.encode("utf-8")))
        return self.content == expected


def _first_line(result: CommandResult) -> str:
    """Return the first non-empty line of a command's error output, or its exit status."""
    for text in (result.stderr, result.stdout):
        for line in text.splitlines():
            if line.strip():
                return line.strip()
    return f"exit status {result.returncode}"


class ServiceInstaller:
    """Writes, enables and removes the gateway's login service on one platform.

    Args:
        platform: a `sys.platform` value; Linux uses systemd, `darwin` uses launchd.
        user_home: the user's home directory, under which the unit file lives.
        runner: runs `systemctl` / `launchctl`.
        uid: the user's uid, naming the launchd domain `gui/<uid>`.
        kind: which service (the gateway, or the node host).
    """

    def __init__(
        self,
        platform: str,
        user_home: Path,
        runner: Runner,
        uid: int,
        kind: ServiceKind = GATEWAY_SERVICE,
    ) -> None:
        """Bind the installer to one platform, user, command runner and service."""
        self.platform = platform
        self.user_home = user_home
        self.manager = ServiceManager.for_platform(platform)
        self._runner = runner
        self._uid = uid
        self.kind = kind
        unit = kind.unit_name
        self._enable_now = (*SYSTEMCTL, "enable", "--now", unit)
        self._disable_now = (*SYSTEMCTL, "disable", "--now", unit)
        self._try_restart = (*SYSTEMCTL, "try-restart", unit)
        self._enable_later = f"{shlex.join(DAEMON_RELOAD)} && {shlex.join(self._enable_now)}"
        self._linger_hint = LINGER_HINT.replace("the gateway", f"the {kind.command}")

    # -- public API ---------------------------------------------------------------------------

    def install(self, spec: ServiceSpec, *, dry_run: bool = False) -> InstallReport:
        """Write the unit file for `spec`, then enable and start it when the manager is reachable.

        Raises:
            ServiceError: unsupported platform, the file cannot be written, or a reachable
                service manager rejected the unit.
        """
        manager = self._require_manager()
        if manager is ServiceManager.SYSTEMD:
            return self._install_systemd(spec, dry_run=dry_run)
        return self._install_launchd(spec, dry_run=dry_run)

    def uninstall(self, *, dry_run: bool = False) -> InstallReport:
        """Stop and disable the service if the manager is reachable, then remove the unit file.

        Raises:
            ServiceError: unsupported platform or the file cannot be removed.
        """
        manager = self._require_manager()
        if manager is ServiceManager.SYSTEMD:
            return self._uninstall_systemd(dry_run=dry_run)
        return self._uninstall_launchd(dry_run=dry_run)

    def installed_unit(self) -> InstalledUnit | None:
        """Return the unit file on disk, or None when absent or the platform is unsupported.

        Raises:
            ServiceError: the file exists but cannot be read.
        """
        if self.manager is None:
            return None
        path = self.manager.unit_path(self.user_home, self.kind)
        content = self._read(path)
        return None if content is None else InstalledUnit(self.manager, path, content)

    # -- systemd --------------------------------------------------------------------------------

    def _install_systemd(self, spec: ServiceSpec, *, dry_run: bool) -> InstallReport:
        """Write the user unit, then reload, enable and start it if systemd is reachable."""
        path = systemd_unit_path(self.user_home, self.kind)
        try:
            content = render_systemd_unit(spec)
        except ValueError as exc:
            raise ServiceError(str(exc)) from exc
        if dry_run:
            lines = [
                f"would write {path}",
                f"would run, if the systemd user manager is reachable: {self._enable_later}",
                self._linger_hint,
            ]
            return InstallReport(path, content, activated=False, lines=lines, dry_run=True)
        previous = self._read(path)
        self._write(path, content)
        lines = [f"wrote {path}"]
        reachable, reason = self._systemd_reachable()
        if not reachable:
            lines.append(
                f"systemd user manager not reachable; enable later with: {self._enable_later}"
            )
            lines.append(f"  ({shlex.join(IS_SYSTEM_RUNNING)}: {reason})")
            lines.append(self._linger_hint)
            return InstallReport(path, content, activated=False, lines=lines)
        self._check(DAEMON_RELOAD, path)
        if previous is not None and previous != content:
            # `enable --now` leaves a running service on its old command line; restart it so a
            # reinstall (new venv, new home) takes effect. A stopped service stays stopped here.
            self._check(self._try_restart, path)
            lines.append(f"restarted {self.kind.unit_name} if it was running (the unit changed)")
        self._check(self._enable_now, path)
        lines.append(f"enabled and started {self.kind.unit_name}")
        lines.append(f"check it with: systemctl --user status {self.kind.unit_name}")
        lines.append(self._linger_hint)
        return InstallReport(path, content, activated=True, lines=lines)

    def _uninstall_systemd(self, *, dry_run: bool) -> InstallReport:
        """Disable and stop the unit if systemd is reachable, remove it, then reload."""
        path = systemd_unit_path(self.user_home, self.kind)
        content = self._read(path)
        if dry_run:
            disable = shlex.join(self._disable_now)
            lines = [f"would run, if the systemd user manager is reachable: {disable}"]
            lines.append(f"would remove {path}" if content is not None else f"no unit at {path}")
            lines.append(f"would run, if reachable: {shlex.join(DAEMON_RELOAD)}")
            return InstallReport(path, content or "", activated=False, lines=lines, dry_run=True)
        lines = []
        reachable, reason = self._systemd_reachable()
        activated = False
        if reachable:
            result = self._run(self._disable_now)
            activated = result.returncode == 0
            if activated:
                lines.append(f"stopped and disabled {self.kind.unit_name}")
            elif content is not None:
                lines.append(f"note: {shlex.join(self._disable_now)}: {_first_line(result)}")
        else:
            lines.append(f"systemd user manager not reachable ({reason}); nothing to stop")
        lines.append(self._remove(path) if content is not None else f"no unit at {path}")
        if reachable:
            result = self._run(DAEMON_RELOAD)
            if result.returncode != 0:
                lines.append(f"note: {shlex.join(DAEMON_RELOAD)}: {_first_line(result)}")
        return InstallReport(path, content or "", activated=activated, lines=lines)

    def _systemd_reachable(self) -> tuple[bool, str]:
        """Ask the user manager for its state; return whether it accepts units, and why not."""
        result = self._run(IS_SYSTEM_RUNNING)
        if result.returncode == EXIT_NOT_FOUND:
            return False, _first_line(result)
        words = result.stdout.split()
        state = words[0] if words else ""
        if state in _USABLE_STATES:
            return True, state
        return False, state or _first_line(result)

    # -- launchd --------------------------------------------------------------------------------

    def _install_launchd(self, spec: ServiceSpec, *, dry_run: bool) -> InstallReport:
        """Write the agent's plist and (re)load it into the user's GUI domain."""
        path = launchd_plist_path(self.user_home, self.kind)
        content = render_launchd_plist(spec).decode("utf-8")
        bootstrap = ("launchctl", "bootstrap", self._domain, str(path))
        bootout = ("launchctl", "bootout", self._service_target)
        if dry_run:
            lines = [
                f"would write {path}",
                f"would create {spec.stdout_log.parent} for the agent's output",
                f"would run, if the agent is loaded: {shlex.join(bootout)}",
                f"would run: {shlex.join(bootstrap)}",
            ]
            return InstallReport(path, content, activated=False, lines=lines, dry_run=True)
        self._write(path, content)
        lines = [f"wrote {path}"]
        # launchd opens StandardOutPath itself and does not create missing directories.
        try:
            spec.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            spec.stdout_log.parent.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ServiceError(f"cannot create {spec.stdout_log.parent}: {exc.strerror}") from exc
        loaded = self._run(("launchctl", "print", self._service_target))
        if loaded.returncode == EXIT_NOT_FOUND:
            lines.append(f"launchctl not found; load later with: {shlex.join(bootstrap)}")
            return InstallReport(path, content, activated=False, lines=lines)
        if loaded.returncode == 0:
            # bootstrap refuses a label that is already loaded; unload the old definition.
            self._check(bootout, path)
            lines.append(f"unloaded the previous {self.kind.label}")
        self._check(bootstrap, path)
        lines.append(f"loaded {self.kind.label} into {self._domain}")
        lines.append(f"check it with: launchctl print {self._service_target}")
        return InstallReport(path, content, activated=True, lines=lines)

    def _uninstall_launchd(self, *, dry_run: bool) -> InstallReport:
        """Unload the agent if it is loaded, then remove its plist."""
        path = launchd_plist_path(self.user_home, self.kind)
        content = self._read(path)
        bootout = ("launchctl", "bootout", self._service_target)
        if dry_run:
            lines = [f"would run, if the agent is loaded: {shlex.join(bootout)}"]
            lines.append(f"would remove {path}" if content is not None else f"no plist at {path}")
            return InstallReport(path, content or "", activated=False, lines=lines, dry_run=True)
        # Not loaded (or no launchctl) is the state uninstall wants, so failure is fine here.
        result = self._run(bootout)
        activated = result.returncode == 0
        lines = [f"unloaded {self.kind.label} from {self._domain}"] if activated else []
        lines.append(self._remove(path) if content is not None else f"no plist at {path}")
        return InstallReport(path, content or "", activated=activated, lines=lines)

    @property
    def _domain(self) -> str:
        """The launchd domain of this user's GUI session."""
        return f"gui/{self._uid}"

    @property
    def _service_target(self) -> str:
        """The launchd service target of the gateway agent."""
        return f"gui/{self._uid}/{self.kind.label}"

    # -- helpers --------------------------------------------------------------------------------

    def _require_manager(self) -> ServiceManager:
        """Return this platform's manager or explain which platforms are supported."""
        if self.manager is None:
            raise ServiceError(
                f"boot integration is supported on Linux (systemd) and macOS (launchd), "
                f"not on {self.platform}; run `clawgate {self.kind.command} run` under your own "
                "supervisor"
            )
        return self.manager

    def _run(self, argv: Sequence[str]) -> CommandResult:
        """Run one command through the injected runner."""
        result = self._runner(argv)
        logger.debug("%s -> exit %d", shlex.join(argv), result.returncode)
        return result

    def _check(self, argv: Sequence[str], path: Path) -> None:
        """Run a command that must succeed; name the written file in the error."""
        result = self._run(argv)
        if result.returncode != 0:
            raise ServiceError(
                f"`{shlex.join(argv)}` failed: {_first_line(result)} "
                f"(the unit file is at {path}; run the command yourself once fixed)"
            )

    @staticmethod
    def _read(path: Path) -> str | None:
        """Return a unit file's text, or None when it does not exist."""
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ServiceError(f"cannot read {path}: {exc.strerror}") from exc

    @staticmethod
    def _write(path: Path, content: str) -> None:
        """Write a unit file atomically, turning OS errors into `ServiceError`."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, content, mode=UNIT_FILE_MODE)
        except OSError as exc:
            raise ServiceError(f"cannot write {path}: {exc.strerror}") from exc

    @staticmethod
    def _remove(path: Path) -> str:
        """Remove a unit file and return the line that says so."""
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise ServiceError(f"cannot remove {path}: {exc.strerror}") from exc
        return f"removed {path}"
