"""Open a canvas file without ever leaving the root (blocking: run it in a worker thread).

The URL's segments were already checked by `paths.resolve_url_path`. Here symlinks get
their turn: the candidate is resolved (`realpath`) and refused unless the result lies
inside the root's real path. The resolved path is then opened one component at a time
from a descriptor of the root with `O_NOFOLLOW`, so a link swapped in between the check
and the open is refused too (`ELOOP`) instead of followed. Only regular files are served.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Final

from .paths import CanvasPath, is_inside

__all__ = [
    "Missing",
    "Opened",
    "Redirect",
    "current_version",
    "file_version",
    "open_canvas_file",
    "read_all",
]

_DIR_FLAGS: Final = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO someone left in the root must not hang the worker thread.
_FILE_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class Opened:
    """A regular file below the root: read whole (`body`), or open (`fd`, the caller closes)."""

    fd: int
    name: str
    size: int
    mtime_ns: int
    version: str
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Redirect:
    """A folder asked for without its trailing slash: send the client to the slash form."""


@dataclass(frozen=True, slots=True)
class Missing:
    """Nothing servable there; `reason` is for the log."""

    reason: str


def _open_below(real_root: Path, parts: tuple[str, ...]) -> int:
    """Open `real_root/parts...` following no symlink on the way; return the descriptor."""
    fd = os.open(real_root, _DIR_FLAGS & ~os.O_NOFOLLOW)
    try:
        for part in parts[:-1]:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def open_canvas_file(
    real_root: Path, path: CanvasPath, read_up_to: int = 0
) -> Opened | Redirect | Missing:
    """Open the file `path` names below `real_root` (a symlink-free absolute path).

    A file of at most `read_up_to` bytes is read at once and its descriptor closed.
    """
    segments = path.file_segments()
    if not segments:
        return Missing("no file named")
    real = Path(os.path.realpath(real_root.joinpath(*segments)))
    if not is_inside(PurePosixPath(real_root), PurePosixPath(real)) or real == real_root:
        return Missing("resolves outside the canvas root")
    try:
        fd = _open_below(real_root, real.relative_to(real_root).parts)
    except OSError as exc:
        return Missing(f"cannot open: {os.strerror(exc.errno or 0)}")
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode):
        os.set_blocking(fd, True)
        opened = Opened(fd, segments[-1], info.st_size, info.st_mtime_ns, file_version(info))
        if info.st_size > read_up_to:
            return opened
        try:
            body = read_all(fd)
        finally:
            os.close(fd)
        return replace(opened, body=body)
    os.close(fd)
    if stat.S_ISDIR(info.st_mode) and not path.directory:
        return Redirect()
    return Missing("not a regular file")


def read_all(fd: int) -> bytes:
    """Read the rest of an open file."""
    chunks = []
    while chunk := os.read(fd, _CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


def file_version(info: os.stat_result) -> str:
    """Return an opaque name for one version of a file: it changes with every write.

    The inode is in it because a page written whole and renamed in (as editors and
    agents do) is a new inode even when its size and coarse mtime match the old one.
    """
    identity = f"{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"
    return hashlib.blake2b(identity.encode(), digest_size=8).hexdigest()


def current_version(real_root: Path, relative: str) -> str | None:
    """Return the version of the root-relative file now, or None if it is not there."""
    try:
        return file_version(os.stat(real_root / relative))
    except OSError:
        return None
