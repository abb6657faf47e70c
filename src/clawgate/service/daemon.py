"""Run the gateway or the hub in the background: start it detached, stop it, follow its log.

One set of functions serves both daemons; `DaemonFiles` says where each keeps its lock, run
state and logs (`gateway_files`: the clawgate home; `hub_files`: the directory of hub.toml).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..files import running_pid
from .paths import Paths
from .runstate import HUB_STATE_NAME, RunState, read_run_state, verify_run_state

__all__ = [
    "DETACHED_ENV",
    "DaemonFiles",
    "StartResult",
    "StopResult",
    "follow",
    "gateway_files",
    "hub_files",
    "start_detached",
    "stop_daemon",
    "tail_lines",
]

#: Set in the child's environment by `start_detached`; `gateway run` records it and drops it.
DETACHED_ENV: Final = "CLAWGATE_DETACHED"
START_TIMEOUT_S: Final = 15.0
# The gateway drains for at most 2 s on SIGTERM; leave room for closing and flushing.
STOP_TIMEOUT_S: Final = 10.0
_POLL_S: Final = 0.05
_FOLLOW_POLL_S: Final = 0.25


@dataclass(frozen=True, slots=True)
class DaemonFiles:
    """Where one daemon keeps its files; `kind` is its CLI group (`clawgate <kind> run`)."""

    kind: str
    pid_file: Path
    run_state: Path
    log_file: Path
    stdout_log: Path


def gateway_files(paths: Paths) -> DaemonFiles:
    """The gateway's files under the clawgate home."""
    return DaemonFiles("gateway", paths.pid_file, paths.run_state, paths.log_file, paths.stdout_log)


def hub_files(directory: Path) -> DaemonFiles:
    """The hub's files, beside its hub.toml."""
    logs = directory / "logs"
    return DaemonFiles(
        "hub",
        directory / "hub.pid",
        directory / HUB_STATE_NAME,
        logs / "hub.log",
        logs / "hub.stdout.log",
    )


@dataclass(frozen=True, slots=True)
class StartResult:
    """How a background start went."""

    ok: bool
    pid: int
    detail: str  # the URL when ok, else the reason from the log
    exit_code: int | None = None  # the child's, when it exited
    state: RunState | None = None  # what the child wrote about itself, when ok


@dataclass(frozen=True, slots=True)
class StopResult:
    """How a stop went: `not-running`, `stopped` (SIGTERM) or `killed` (SIGKILL)."""

    outcome: str
    pid: int | None
    seconds: float


def tail_lines(path: Path, count: int, start: int = 0) -> list[str]:
    """Return the last `count` lines of `path` after byte offset `start`."""
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            data = handle.read()
    except FileNotFoundError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-count:]


def _last_error(log: Path, offset: int, exit_code: int | None) -> str:
    """Return the child's last non-blank output line since `offset`, or its exit code."""
    lines = [line for line in tail_lines(log, 20, offset) if line.strip()]
    return lines[-1] if lines else f"exited with code {exit_code}"


def start_detached(
    files: DaemonFiles,
    run_args: Sequence[str],
    *,
    timeout_s: float = START_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic,
) -> StartResult:
    """Spawn `clawgate <kind> run` in its own session and wait until *it* serves.

    Success needs the run state to name the child's own pid and the server at its URL to
    prove it wrote that file (`verify_run_state`); whatever else answers on the port (another
    gateway or hub, an older start) never counts. A child that exits is reported with its
    last output line.
    """
    stdout_log = files.stdout_log
    stdout_log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(stdout_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    offset = os.lseek(fd, 0, os.SEEK_END)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "clawgate.cli", files.kind, "run", *run_args],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, DETACHED_ENV: "1"},
        )
    finally:
        os.close(fd)
    deadline = clock() + timeout_s
    while clock() < deadline:
        if process.poll() is not None:
            detail = _last_error(stdout_log, offset, process.returncode)
            return StartResult(False, process.pid, detail, process.returncode)
        state = read_run_state(files.run_state)
        if state is not None and state.pid == process.pid and verify_run_state(state) is None:
            return StartResult(True, process.pid, state.url, state=state)
        time.sleep(_POLL_S)
    process.terminate()
    return StartResult(False, process.pid, f"not ready after {timeout_s:g} s; see {stdout_log}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_daemon(
    pid_file: Path,
    *,
    timeout_s: float = STOP_TIMEOUT_S,
    clock: Callable[[], float] = time.monotonic,
) -> StopResult:
    """Send SIGTERM to the daemon holding `pid_file`, and SIGKILL if it outlives `timeout_s`."""
    started = clock()
    pid = running_pid(pid_file)
    if pid is None:
        return StopResult("not-running", None, 0.0)
    if pid <= 0:
        return StopResult("not-running", None, 0.0)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return StopResult("stopped", pid, clock() - started)  # it exited meanwhile
    while clock() - started < timeout_s:
        if running_pid(pid_file) is None and not _alive(pid):
            return StopResult("stopped", pid, clock() - started)
        time.sleep(_POLL_S)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid) and clock() - started < timeout_s + 5:
            time.sleep(_POLL_S)
    return StopResult("killed", pid, clock() - started)


def follow(log_file: Path, write: Callable[[str], object]) -> None:
    """Pass what is appended to `log_file` to `write` until interrupted, across rotations."""
    position = log_file.stat().st_size if log_file.exists() else 0
    inode = log_file.stat().st_ino if log_file.exists() else None
    while True:
        time.sleep(_FOLLOW_POLL_S)
        try:
            info = log_file.stat()
        except FileNotFoundError:
            continue
        if info.st_ino != inode or info.st_size < position:
            inode, position = info.st_ino, 0  # rotated: read the new file from its start
        if info.st_size > position:
            with log_file.open("rb") as handle:
                handle.seek(position)
                chunk = handle.read()
            position += len(chunk)
            write(chunk.decode("utf-8", errors="replace"))
