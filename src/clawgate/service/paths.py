"""Where clawgate keeps its files (control-plane spec §1.1)."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .runstate import GATEWAY_STATE_NAME

__all__ = ["HomeError", "Paths", "resolve_home"]

HOME_ENV = "CLAWGATE_HOME"


class HomeError(Exception):
    """The clawgate home cannot be used."""


def resolve_home(environ: dict[str, str] | None = None) -> Path:
    """Return the home directory: `$CLAWGATE_HOME`, else `~/.clawgate`.

    Raises:
        HomeError: `CLAWGATE_HOME` is set to a relative path.
    """
    env = os.environ if environ is None else environ
    value = env.get(HOME_ENV)
    if value:
        home = Path(value).expanduser()
        if not home.is_absolute():
            raise HomeError(f"{HOME_ENV} must be an absolute path (got {value!r})")
        return home
    return Path.home() / ".clawgate"


@dataclass(frozen=True, slots=True)
class Paths:
    """Every file path under one clawgate home."""

    home: Path

    @property
    def config(self) -> Path:
        """The config file."""
        return self.home / "config.toml"

    @property
    def logs(self) -> Path:
        """The log directory."""
        return self.home / "logs"

    @property
    def log_file(self) -> Path:
        """The gateway's log file."""
        return self.logs / "gateway.log"

    @property
    def ipc_socket(self) -> Path:
        """The plugin IPC socket."""
        return self.home / "gateway.sock"

    @property
    def tls_dir(self) -> Path:
        """Where a self-signed certificate pair is kept."""
        return self.home / "tls"

    @property
    def pid_file(self) -> Path:
        """The single-instance lock file."""
        return self.home / "gateway.pid"

    @property
    def run_state(self) -> Path:
        """Where the running gateway records its actual address (`service/runstate.py`)."""
        return self.home / GATEWAY_STATE_NAME

    @property
    def stdout_log(self) -> Path:
        """Where a background gateway's stray output goes."""
        return self.logs / "gateway.stdout.log"

    @property
    def canvas_root(self) -> Path:
        """The canvas host's default root: `<home>/canvas`."""
        return self.home / "canvas"

    @property
    def state_db(self) -> Path:
        """The SQLite state database."""
        return self.home / "state.db"

    def ensure(self) -> list[str]:
        """Create the home (0700) and log directory; return warnings about fixed modes.

        Raises:
            HomeError: the home is not a directory owned by this user.
        """
        warnings: list[str] = []
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.home.stat()
        if not stat.S_ISDIR(info.st_mode):
            raise HomeError(f"{self.home} is not a directory")
        if info.st_uid != os.geteuid():
            raise HomeError(f"{self.home} is owned by another user; use a home you own")
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(self.home, 0o700)
            warnings.append(f"reset permissions of {self.home} to 0700")
        self.logs.mkdir(mode=0o700, exist_ok=True)
        return warnings
