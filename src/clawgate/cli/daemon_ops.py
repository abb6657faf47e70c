"""The background-daemon commands the gateway and the hub share: stop, restart's guard, logs.

Each takes the daemon's `DaemonFiles` (`service/daemon.py`); the messages name its CLI group.
"""

from __future__ import annotations

import contextlib
import sys

from ..files import running_pid
from ..service.daemon import DaemonFiles, follow, stop_daemon, tail_lines
from ..service.runstate import read_run_state
from ._common import console, fail

__all__ = ["refuse_foreign_restart", "show_logs", "stop_and_say"]


def stop_and_say(files: DaemonFiles) -> None:
    """Stop the daemon: SIGTERM, then SIGKILL if it does not drain in time; say which."""
    result = stop_daemon(files.pid_file)
    name = f"clawgate {files.kind}"
    if result.outcome == "not-running":
        console.print(f"{name} is not running")
    elif result.outcome == "stopped":
        console.print(f"stopped {name} (pid {result.pid}) in {result.seconds:.1f} s")
    else:
        console.print(f"{name} (pid {result.pid}) did not stop after SIGTERM; killed it")


def refuse_foreign_restart(files: DaemonFiles) -> None:
    """Exit 1 when the running daemon was not spawned by `<kind> start` (nothing is touched)."""
    pid = running_pid(files.pid_file)
    state = read_run_state(files.run_state)
    kind = files.kind
    if pid and state is not None and state.pid == pid and not state.detached:
        fail(
            f"the {kind} (pid {pid}) was not started by `clawgate {kind} start`: it runs in "
            f"the foreground (`clawgate {kind} run`) or under a service manager; stop it there "
            f"(Ctrl-C, or `systemctl --user restart clawgate-{kind}`), or run "
            f"`clawgate {kind} stop` and then `clawgate {kind} start`",
            1,
        )


def show_logs(files: DaemonFiles, lines: int, keep_following: bool) -> None:
    """Print the last `lines` of the daemon's log, then new lines when `keep_following`."""
    for line in tail_lines(files.log_file, lines):
        print(line)
    if not keep_following:
        return

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    with contextlib.suppress(KeyboardInterrupt):
        follow(files.log_file, write)
