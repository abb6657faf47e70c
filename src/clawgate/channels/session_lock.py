"""One process per platform session: an exclusive lock on a file beside the session.

A WhatsApp Web session is a device identity: two processes opening it at once would each
reconnect and push the other off (a "stream replaced" loop) and corrupt its key store. The
gateway takes this lock before it opens the session and holds it while the account runs;
a second gateway, or a tool run by hand on the same files, is refused with the holder's pid.
The lock is the kernel's (`flock`), so it is released when the holder exits, even by kill -9.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .base import AuthFailed

__all__ = ["SessionBusy", "SessionLock"]


class SessionBusy(AuthFailed):
    """Another process holds the session; retrying will not help until it lets go."""


class SessionLock:
    """An exclusive, non-blocking lock on `path` (created 0600), holding the owner's pid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise `SessionBusy` naming the process that holds it."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise SessionBusy(
                f"the session at {self.path.parent} is open in process {holder}; only one"
                " process per host may use it (stop the other gateway first)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (closing the file releases it); idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)
