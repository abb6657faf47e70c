"""How a canvas file is answered: content type, caching headers, the injected client script.

Pure. Content types come from one fixed table, not the host's `/etc/mime.types`, so a
page behaves the same on every machine; text types carry `charset=utf-8`. Canvas files
change whenever an agent writes them, so every answer is `Cache-Control: no-cache`
(the browser keeps a copy but asks first) with a validator (`ETag`, `Last-Modified`) that
turns the question into a cheap `304 Not Modified`.
"""

from __future__ import annotations

import email.utils
import re
from typing import Final

__all__ = [
    "CLIENT_SCRIPT_PATH",
    "LIVE_SOCKET_PATH",
    "cache_headers",
    "content_type",
    "entity_tag",
    "inject_client",
    "is_html",
    "missing_page",
    "not_modified",
]

#: The live-reload socket and the script that opens it, under the host's reserved prefix.
LIVE_SOCKET_PATH: Final = "/__clawgate__/ws"
CLIENT_SCRIPT_PATH: Final = "/__clawgate__/live-reload.js"

_TEXT: Final = "; charset=utf-8"
_TYPES: Final = {
    ".html": "text/html" + _TEXT,
    ".htm": "text/html" + _TEXT,
    ".css": "text/css" + _TEXT,
    ".js": "text/javascript" + _TEXT,
    ".mjs": "text/javascript" + _TEXT,
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".txt": "text/plain" + _TEXT,
    ".md": "text/markdown" + _TEXT,
    ".csv": "text/csv" + _TEXT,
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".bmp": "image/bmp",
    ".wasm": "application/wasm",
    ".pdf": "application/pdf",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".ogg": "audio/ogg",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
}
_UNKNOWN: Final = "application/octet-stream"
_HTML: Final = frozenset({".html", ".htm"})
# Where the client script goes: before the last </body>, else </html>, else at the end.
_BODY_END: Final = re.compile(rb"</body\s*>", re.IGNORECASE)
_HTML_END: Final = re.compile(rb"</html\s*>", re.IGNORECASE)
_TAG: Final = f'<script src="{CLIENT_SCRIPT_PATH}"></script>'.encode()
_VERSIONED_TAG: Final = '<script src="{}" data-version="{}"></script>'


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def content_type(name: str) -> str:
    """Return the Content-Type for a file name; unknown kinds are `application/octet-stream`."""
    return _TYPES.get(_suffix(name), _UNKNOWN)


def is_html(name: str) -> bool:
    """Return whether a file is a page that gets the live-reload client script."""
    return _suffix(name) in _HTML


def entity_tag(size: int, mtime_ns: int, *, injected: bool) -> str:
    """Return a weak ETag from the file's size and modification time.

    Weak: an injected page is not byte-identical to the file (`-r` marks it), and a
    size+mtime validator cannot promise byte equality anyway.
    """
    return f'W/"{mtime_ns:x}-{size:x}{"-r" if injected else ""}"'


def cache_headers(etag: str, mtime_s: float) -> dict[str, str]:
    """Return the caching and safety headers of a canvas file."""
    return {
        "Cache-Control": "no-cache",
        "ETag": etag,
        "Last-Modified": email.utils.formatdate(int(mtime_s), usegmt=True),
        "X-Content-Type-Options": "nosniff",
    }


def not_modified(
    if_none_match: str | None, if_modified_since: str | None, etag: str, mtime_s: float
) -> bool:
    """Return whether a conditional GET may be answered `304 Not Modified` (RFC 9110 §13).

    `If-None-Match` wins when present (weak comparison); else `If-Modified-Since`, to the
    second.
    """
    if if_none_match is not None:
        wanted = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in wanted or etag.removeprefix("W/") in wanted
    if if_modified_since is None:
        return False
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        return False
    return int(mtime_s) <= since.timestamp()


def inject_client(html: bytes, version: str = "") -> bytes:
    """Return `html` with the live-reload client script tag before its closing body tag.

    `version` (`files.file_version`, hex) names the file version the page shows; the
    script sends it back so a change the page already shows does not reload it.
    """
    tag = _VERSIONED_TAG.format(CLIENT_SCRIPT_PATH, version).encode() if version else _TAG
    for pattern in (_BODY_END, _HTML_END):
        # The last one: an earlier match may sit inside a script or a comment.
        ends = [match.start() for match in pattern.finditer(html)]
        if ends:
            return html[: ends[-1]] + tag + html[ends[-1] :]
    return html + tag


def missing_page(path: str) -> bytes:
    """Return the 404 page: it has the client script, so it reloads when the file appears."""
    shown = path.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        "<!doctype html>\n<html><head><meta charset=utf-8><title>Not on the canvas yet</title>"
        "</head><body><p>Nothing is at <code>"
        + shown
        + "</code> on this canvas yet. This page reloads when it appears.</p></body></html>\n"
    ).encode()
