"""Render the service files that start the gateway at login (control-plane spec §1.5).

Everything here is pure except `default_program`, which looks at the interpreter's directory.
A unit never carries a secret: the only environment it sets is `CLAWGATE_HOME`, and only when
the home is not the default. The daemon reads its credentials from `<home>/config.toml`.
"""

from __future__ import annotations

import os
import plistlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "GATEWAY_SERVICE",
    "HUB_SERVICE",
    "LAUNCHD_LABEL",
    "NODE_SERVICE",
    "SYSTEMD_UNIT_NAME",
    "ServiceKind",
    "ServiceSpec",
    "default_program",
    "launchd_plist_path",
    "render_launchd_plist",
    "render_systemd_unit",
    "systemd_unit_path",
]

SYSTEMD_UNIT_NAME: Final = "clawgate-gateway.service"
LAUNCHD_LABEL: Final = "dev.clawgate.gateway"
HOME_ENV: Final = "CLAWGATE_HOME"
GATEWAY_ARGS: Final = ("gateway", "run")
STDOUT_LOG: Final = "logs/gateway.stdout.log"


@dataclass(frozen=True, slots=True)
class ServiceKind:
    """Which clawgate program a login service runs: the gateway, the node host or the hub."""

    unit_name: str
    label: str
    args: tuple[str, ...]
    description: str
    stdout_log: str
    command: str  # the CLI group that installs it, for the unit's comment and messages
    secrets_file: str = "config.toml"  # where it reads its credentials, under its home


GATEWAY_SERVICE: Final = ServiceKind(
    SYSTEMD_UNIT_NAME, LAUNCHD_LABEL, GATEWAY_ARGS, "clawgate gateway", STDOUT_LOG, "gateway"
)
NODE_SERVICE: Final = ServiceKind(
    "clawgate-node.service",
    "dev.clawgate.node",
    ("node", "run"),
    "clawgate node host",
    "node/logs/node.stdout.log",
    "node",
    "node/node.toml",
)
HUB_SERVICE: Final = ServiceKind(
    "clawgate-hub.service",
    "dev.clawgate.hub",
    ("hub", "run"),
    "clawgate hub",
    "logs/hub.stdout.log",
    "hub",
    "hub.toml",
)

#: systemd's `WatchdogSec=` for a notify unit; the gateway pings every half of it.
WATCHDOG_SEC: Final = 30

# Escaped words made only of these characters are written to a unit file as they are;
# anything else (spaces, quotes, backslashes, `;`, non-ASCII, …) is wrapped in double quotes.
_SAFE_WORD: Final = re.compile(r"[A-Za-z0-9/._+=:,@%$-]+")
_UNSAFE_EXECUTABLE: Final = re.compile(r"[\x00-\x1f\x7f\\\"']")


@dataclass(frozen=True)
class ServiceSpec:
    """What the service runs and with which home.

    `program` is the command that starts the CLI (an absolute executable, possibly followed by
    interpreter arguments such as `-m clawgate.cli`); the units append `gateway run` to it.
    `unit_type` is the systemd `Type=`: `"notify"` for the gateway, which reports READY=1,
    WATCHDOG=1 and STOPPING=1 (`service/sd_notify.py`); `"simple"` for a process that does not
    (a notify unit whose process never reports ready is killed at the start timeout).
    """

    program: tuple[str, ...]
    home: Path
    home_is_default: bool
    unit_type: str = "simple"
    kind: ServiceKind = GATEWAY_SERVICE

    def __post_init__(self) -> None:
        """Reject a spec that would produce a unit depending on the working directory."""
        if not self.program or not os.path.isabs(self.program[0]):
            raise ValueError(f"program must start with an absolute path, got {self.program!r}")
        if not self.home.is_absolute():
            raise ValueError(f"home must be an absolute path, got {str(self.home)!r}")

    @property
    def argv(self) -> tuple[str, ...]:
        """The full command line of the service."""
        return (*self.program, *self.kind.args)

    @property
    def environment(self) -> dict[str, str]:
        """The environment the service needs: `CLAWGATE_HOME` only for a non-default home."""
        return {} if self.home_is_default else {HOME_ENV: str(self.home)}

    @property
    def stdout_log(self) -> Path:
        """Where launchd sends stray output of the daemon."""
        return self.home / self.kind.stdout_log


def default_program(executable: str | None = None) -> tuple[str, ...]:
    """Return the absolute command that runs this clawgate installation.

    Prefers the console script installed next to the interpreter (`<venv>/bin/clawgate`), which
    is what a user would type and what shows up in `ps`; falls back to the interpreter itself
    with `-m clawgate.cli`, which works for any installation the running code came from. The
    interpreter path is made absolute but symlinks are kept: a venv's `python` is a symlink to
    the base interpreter, and resolving it would start the service outside the venv.

    Args:
        executable: the interpreter path; defaults to `sys.executable`.
    """
    python = os.path.abspath(executable or sys.executable)
    script = Path(python).parent / "clawgate"
    if script.is_file() and os.access(script, os.X_OK):
        return (str(script),)
    return (python, "-m", "clawgate.cli")


def systemd_unit_path(user_home: Path, kind: ServiceKind = GATEWAY_SERVICE) -> Path:
    """Return where the systemd user unit lives."""
    return user_home / ".config" / "systemd" / "user" / kind.unit_name


def launchd_plist_path(user_home: Path, kind: ServiceKind = GATEWAY_SERVICE) -> Path:
    """Return where the launchd agent's plist lives."""
    return user_home / "Library" / "LaunchAgents" / f"{kind.label}.plist"


def _quote(word: str) -> str:
    """Quote one word by systemd.syntax(7) rules; `%` specifiers are escaped by the caller."""
    if _SAFE_WORD.fullmatch(word):
        return word
    out: list[str] = []
    for char in word:
        if char in '\\"':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            # A raw control character would end or corrupt the line; systemd unescapes \xNN.
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _exec_executable(path: str) -> str:
    """Escape ExecStart's executable: specifiers (`%`) are expanded there, variables are not."""
    if _UNSAFE_EXECUTABLE.search(path):
        # systemd refuses such a path however it is escaped ("contains special characters").
        raise ValueError(
            f"systemd cannot run an executable whose path contains quotes, backslashes or "
            f"control characters: {path!r}; install clawgate in another directory"
        )
    return _quote(path.replace("%", "%%"))


def _exec_argument(word: str) -> str:
    """Escape one ExecStart argument: specifiers (`%`), variables (`$`), then quoting."""
    return _quote(word.replace("%", "%%").replace("$", "$$"))


def _environment_assignment(name: str, value: str) -> str:
    """Escape one `Environment=` assignment; `$` is literal there, `%` is a specifier."""
    return _quote(f"{name}={value}".replace("%", "%%"))


def _notify_lines(unit_type: str) -> list[str]:
    if unit_type != "notify":
        return []
    return ["NotifyAccess=main", f"WatchdogSec={WATCHDOG_SEC}"]


def render_systemd_unit(spec: ServiceSpec) -> str:
    """Return the text of `clawgate-gateway.service` for a systemd user manager.

    Words are quoted by systemd.syntax(7): a word with anything but safe characters is wrapped
    in double quotes with `\\` and `"` backslash-escaped; `%` is doubled everywhere (specifiers)
    and `$` in arguments (variable expansion does not touch the executable or `Environment=`).

    Raises:
        ValueError: the executable's path has characters systemd rejects in any form.
    """
    service = [
        f"Type={spec.unit_type}",
        # The daemon itself notifies (no helper process); a loop stalled 30 s gets it restarted.
        *_notify_lines(spec.unit_type),
        "ExecStart="
        + " ".join([_exec_executable(spec.argv[0]), *map(_exec_argument, spec.argv[1:])]),
        "Restart=on-failure",
        "RestartSec=5",
    ]
    service += [
        f"Environment={_environment_assignment(name, value)}"
        for name, value in spec.environment.items()
    ]
    kind = spec.kind
    lines = [
        f"# Written by `clawgate {kind.command} install`; "
        f"remove with `clawgate {kind.command} uninstall`.",
        f"# Holds no secrets: the {kind.command} reads its credentials from its home's "
        f"{kind.secrets_file}.",
        "[Unit]",
        f"Description={kind.description}",
        "",
        "[Service]",
        *service,
        "",
        "[Install]",
        "WantedBy=default.target",
    ]
    return "\n".join(lines) + "\n"


def render_launchd_plist(spec: ServiceSpec) -> bytes:
    """Return the XML plist of the `dev.clawgate.gateway` launchd agent."""
    agent: dict[str, object] = {
        "Label": spec.kind.label,
        "ProgramArguments": list(spec.argv),
        "RunAtLoad": True,
        # Restart after a crash or a non-zero exit, not after a clean stop.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "StandardOutPath": str(spec.stdout_log),
        "StandardErrorPath": str(spec.stdout_log),
    }
    if spec.environment:
        agent["EnvironmentVariables"] = spec.environment
    return plistlib.dumps(agent, fmt=plistlib.FMT_XML, sort_keys=True)
