"""Files every layer shares: atomic private writes and single-instance lock files.

Invariants of ``write_atomic``: a reader of ``path`` sees the old content or the new, never a
mix; the new content never exists on disk with wider permissions than ``mode``; once it
returns, a crash or power loss keeps the new file (content and directory entry are fsynced);
when it raises, ``path`` is as it was and no temporary file is left behind.

Invariants of ``PidLock`` (``gateway.pid``, control-plane spec §1.3, and ``hub.db.lock``): the
PID recorded in the file is informational. Whether a process runs is decided by the lock: the
kernel releases an ``flock`` on any exit, so a file left behind by ``kill -9`` never blocks a
new start. The file is truncated on exit but never unlinked, because unlinking a lock file
lets two starting processes lock different inodes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import Final

__all__ = [
    "PRIVATE_MODE",
    "AlreadyRunning",
    "PidLock",
    "recorded_pid",
    "running_pid",
    "write_atomic",
]

#: Owner read/write only: config with tokens, keys, identities, lock files.
PRIVATE_MODE: Final = 0o600
_ACQUIRE_TRIES: Final = 5


def write_atomic(
    path: Path, data: bytes | str, *, mode: int = PRIVATE_MODE, replace: bool = True
) -> bool:
    """Write ``data`` to ``path`` through a temporary file in the same directory.

    Args:
        path: The destination; its directory must exist.
        data: The complete new content; a ``str`` is written as UTF-8.
        mode: The file's permission bits, exact whatever the umask.
        replace: Replace an existing file. When False an existing ``path`` is left as it is,
            and of two processes creating it at once exactly one wins.

    Returns:
        True if ``path`` now holds ``data``; False only when ``replace`` is False and
        ``path`` already existed.

    Raises:
        OSError: the file cannot be written; ``path`` is unchanged.
    """
    content = data.encode("utf-8") if isinstance(data, str) else data
    # mkstemp creates the file 0600, and fchmod sets `mode` before the first byte is written.
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, mode)
            _write_all(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        if not _install(tmp, path, replace=replace):
            return False
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return True


def _write_all(fd: int, content: bytes) -> None:
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]


def _install(tmp: Path, path: Path, *, replace: bool) -> bool:
    """Move the finished temporary file to ``path``; False if it exists and must stay."""
    if replace:
        os.replace(tmp, path)
        return True
    try:
        # link() fails if the destination exists, unlike rename(): the first of two racing
        # creators wins and the other reads the winner's file.
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:
        # A file system without hard links: fall back to rename; a race here is between two
        # first-ever writers on an exotic file system.
        os.replace(tmp, path)
    return True


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry change to disk where the platform allows it."""
    # Some platforms and file systems cannot open or fsync a directory; the file's own content
    # is already on disk by then, only the rename's durability is best effort there.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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
    """Return the PID of the process holding the lock (0 if it wrote none yet), or None."""
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
    """Hold a lock file exclusively for the life of this process, with its PID inside."""

    def __init__(self, path: Path) -> None:
        """Prepare the lock on ``path``; nothing touches the disk until ``acquire``."""
        self.path = path
        self._fd: int | None = None
        self.stale_pid: int | None = None

    def acquire(self) -> None:
        """Take the lock and record this PID.

        Raises:
            AlreadyRunning: another live process holds the lock.
            OSError: the file cannot be opened or written.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
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
        os.fchmod(fd, PRIVATE_MODE)
        self._fd = fd

    def release(self) -> None:
        """Truncate the file and drop the lock; the file itself stays."""
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None
