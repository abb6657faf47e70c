"""The single-instance lock `gateway.pid` (control-plane spec §1.3).

The PID recorded in the file is informational. Whether a daemon runs is decided by the
lock: the kernel releases an `flock` on any exit, so a file left behind by `kill -9`
never blocks a new start. The file is truncated on exit but never unlinked, because
unlinking a lock file lets two starting daemons lock different inodes.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

__all__ = ["AlreadyRunning", "PidLock", "recorded_pid", "running_pid"]

_ACQUIRE_TRIES = 5


class AlreadyRunning(Exception):
    """Another process holds the lock."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"already running (pid {pid})" if pid else "already running")
        self.pid = pid


def recorded_pid(path: Path) -> int | None:
    """Return the PID written in the file, if it holds one."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def running_pid(path: Path) -> int | None:
    """Return the PID of the daemon holding the lock (0 if it wrote none yet), or None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return recorded_pid(path) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class PidLock:
    """Hold `gateway.pid` exclusively for the life of this process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self.stale_pid: int | None = None

    def acquire(self) -> None:
        """Take the lock and record this PID.

        Raises:
            AlreadyRunning: another live process holds the lock.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        # A liveness probe holds a shared lock for an instant: try a few times.
        for attempt in range(_ACQUIRE_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == _ACQUIRE_TRIES - 1:
                    os.close(fd)
                    raise AlreadyRunning(recorded_pid(self.path)) from None
                time.sleep(0.02)
        previous = recorded_pid(self.path)
        self.stale_pid = previous if previous and previous != os.getpid() else None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        os.fchmod(fd, 0o600)
        self._fd = fd

    def release(self) -> None:
        """Truncate the file and drop the lock; the file itself stays."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None
