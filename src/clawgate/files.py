"""Files that must never be seen half-written or, while being written, by other users.

Invariants of ``write_atomic``: a reader of ``path`` sees the old content or the new, never a
mix; the new content never exists on disk with wider permissions than ``mode``; once it
returns, a crash or power loss keeps the new file (content and directory entry are fsynced);
when it raises, ``path`` is as it was and no temporary file is left behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Final

__all__ = ["PRIVATE_MODE", "write_atomic"]

#: Owner read/write only: config with tokens, keys, identities.
PRIVATE_MODE: Final = 0o600


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
