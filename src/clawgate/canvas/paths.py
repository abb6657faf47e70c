"""Which file a canvas URL names, decided without touching the disk.

Pure: a raw request path (still percent-encoded, as it came off the wire) goes in, and
either the file's path relative to the canvas root comes out, or a refusal. Invariants:

- The raw path is decoded exactly once, here. A segment that decodes to `.` or `..`, or
  that holds a `/`, a backslash, NUL or another control character, is refused, so no
  decoded form can climb out of the root (`%2e%2e`, `..%2f`, `%5c`, `%00`). A second
  round of encoding (`%252e%252e`) decodes to a literal file name, which is harmless.
- Names that start with a dot (`.git`, `.env`, editor swap files) are never served.
- The result is only ever joined below the root; the shell then resolves symlinks and
  serves the file only when `is_inside(real_root, real_file)` (a symlink that leads out
  of the root is refused), opening the resolved path without following links again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import PurePosixPath
from typing import Final

from ..protocol.limits import CANVAS_MAX_NAME_BYTES, CANVAS_MAX_URL_PATH_BYTES

__all__ = [
    "INDEX",
    "RESERVED_PREFIX",
    "CanvasPath",
    "Refusal",
    "RefusalKind",
    "change_reaches",
    "is_inside",
    "page_scope",
    "relative_change",
    "resolve_url_path",
]

INDEX: Final = "index.html"
#: The first URL segment the canvas host keeps for itself (live reload socket, client script).
RESERVED_PREFIX: Final = "__clawgate__"
_HEX: Final = frozenset("0123456789abcdefABCDEF")


class RefusalKind(Enum):
    """Why a URL path is not served: malformed (400) or naming nothing servable (404)."""

    BAD_REQUEST = 400
    NOT_FOUND = 404


@dataclass(frozen=True, slots=True)
class Refusal:
    """A URL path that names no file under the root, and why (for the log, not the client)."""

    kind: RefusalKind
    reason: str


@dataclass(frozen=True, slots=True)
class CanvasPath:
    """A URL path resolved to decoded segments below the root.

    `directory` is True when the URL ended with `/` (or was `/`): it names the folder's
    `index.html`.
    """

    segments: tuple[str, ...]
    directory: bool

    @property
    def reserved(self) -> bool:
        """Whether the path is under `/__clawgate__/` (served by the host, not the root)."""
        return bool(self.segments) and self.segments[0] == RESERVED_PREFIX

    def file_segments(self) -> tuple[str, ...]:
        """Return the segments of the file to open: a folder's URL names its index.html."""
        return (*self.segments, INDEX) if self.directory else self.segments


def _percent_decode(segment: str) -> bytes | None:
    """Decode `%XX` escapes once; return None for a malformed escape or a non-ASCII raw byte."""
    out = bytearray()
    i = 0
    while i < len(segment):
        char = segment[i]
        if char == "%":
            pair = segment[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                return None
            out.append(int(pair, 16))
            i += 3
            continue
        if ord(char) > 0x7E or ord(char) < 0x21:
            return None  # the request line carries no raw spaces, controls or non-ASCII
        out.append(ord(char))
        i += 1
    return bytes(out)


def _decode_segment(raw: str) -> str | Refusal:
    if "\\" in raw:
        return Refusal(RefusalKind.BAD_REQUEST, "backslash in path")
    decoded = _percent_decode(raw)
    if decoded is None:
        return Refusal(RefusalKind.BAD_REQUEST, "malformed percent-encoding")
    try:
        name = decoded.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(RefusalKind.BAD_REQUEST, "path is not UTF-8")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        return Refusal(RefusalKind.BAD_REQUEST, "control character or NUL in path")
    if "/" in name or "\\" in name:
        return Refusal(RefusalKind.BAD_REQUEST, "encoded separator in path")
    if name in (".", ".."):
        return Refusal(RefusalKind.NOT_FOUND, "dot segment in path")
    if name.startswith("."):
        return Refusal(RefusalKind.NOT_FOUND, "hidden name in path")
    if len(decoded) > CANVAS_MAX_NAME_BYTES:
        return Refusal(RefusalKind.NOT_FOUND, "name too long")
    return name


def resolve_url_path(raw_path: str) -> CanvasPath | Refusal:
    """Return the decoded segments a raw URL path names below the root, or why not.

    Args:
        raw_path: the request target's path, still percent-encoded, without the query.
    """
    if not raw_path.startswith("/"):
        return Refusal(RefusalKind.BAD_REQUEST, "path must start with /")
    if len(raw_path) > CANVAS_MAX_URL_PATH_BYTES:
        return Refusal(RefusalKind.BAD_REQUEST, "path too long")
    segments: list[str] = []
    # Empty segments (`//`) add nothing: segments are only ever joined below the root.
    for raw in raw_path[1:].split("/"):
        if not raw:
            continue
        name = _decode_segment(raw)
        if isinstance(name, Refusal):
            return name
        segments.append(name)
    return CanvasPath(tuple(segments), directory=raw_path.endswith("/"))


def is_inside(real_root: PurePosixPath, real_path: PurePosixPath) -> bool:
    """Return whether a symlink-free absolute path is the root or lies below it."""
    return real_path == real_root or real_root in real_path.parents


def relative_change(real_root: PurePosixPath, changed: PurePosixPath) -> str | None:
    """Return a changed file's path relative to the root, or None when it is not served.

    Changes outside the root and to hidden names (editor swap files, `.git`) are ignored.
    """
    if not is_inside(real_root, changed) or changed == real_root:
        return None
    parts = changed.relative_to(real_root).parts
    if any(part.startswith(".") for part in parts):
        return None
    return "/".join(parts)


def page_scope(page: CanvasPath) -> str:
    """Return the folder whose changes reload a page: its agent's folder, "" at the top.

    `/main/index.html` and `/main/charts/` belong to `main`; `/` and `/index.html` to "".
    """
    top_level = len(page.segments) <= (0 if page.directory else 1)
    return "" if top_level else page.segments[0]


def change_reaches(scope: str, changed: str) -> bool:
    """Return whether a change (a root-relative path) should reload a page of `scope`.

    A page at the top reloads on any change; an agent's page on changes in its own
    folder and to files at the top (shared styles, scripts), not in other agents' folders.
    """
    if not scope or "/" not in changed:
        return True
    return changed.split("/", 1)[0] == scope
