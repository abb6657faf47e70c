"""The live-reload socket's protocol: one `auth` frame in, then reload notices out.

Pure (the clock is passed in); `canvas/server.py` moves the frames. The exchange, on
`/__clawgate__/ws`:

1. The page sends exactly one text frame within the gateway's handshake timeout:
   `{"type": "auth", "page": location.pathname, "version"?, "token"?, "password"?,
   "deviceId"?, "deviceToken"?}` (the credentials as in `connect`'s `auth`; `version`
   is the one the host put on the page's script tag). Nothing is sent to a socket
   before that frame is accepted.
2. Accepted: the host answers `{"type": "ready"}`. Refused: it closes with 1008 and the
   gateway's own message (`unauthorized: gateway token mismatch ...`), after the same
   failure delay a refused `connect` gets.
3. When files under the root change, each socket whose page they reach gets
   `{"type": "reload", "paths": [...]}` naming those of the changed files (root-relative)
   that reach it (`paths.change_reaches`); the page reloads itself. A change to the
   page's own file alone is not sent while that file is still the version the page
   showed: a page opened just after a write would otherwise reload for that write.
   A socket whose credential stopped holding (secret changed, device token revoked) is
   closed with 4001 instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ..protocol.handshake import (
    CLOSE_AUTH_CHANGED,
    CLOSE_BINARY,
    CLOSE_HANDSHAKE_TIMEOUT,
    CLOSE_POLICY,
    CLOSE_TOO_LARGE,
    close_reason,
)
from ..protocol.limits import CANVAS_AUTH_FRAME_MAX_BYTES
from ..protocol.nesting import is_depth_error, nesting_error, nesting_exceeds
from .access import CanvasAccess, Denied, Grant, credentials_from_frame
from .paths import CanvasPath, change_reaches, page_scope, resolve_url_path

__all__ = [
    "AUTH_CHANGED",
    "READY",
    "Admitted",
    "Closing",
    "LiveSocketMachine",
    "reload_notice",
    "reload_paths",
]

READY: Final = json.dumps({"type": "ready"})
_VERSION: Final = re.compile(r"[0-9a-f]{1,64}")


@dataclass(frozen=True, slots=True)
class Admitted:
    """The page may hear reload notices for `scope` (see `paths.page_scope`).

    `page` is the root-relative file the page was served from and `version` the
    version of it the page shows (empty when unknown, e.g. a 404 page).
    """

    grant: Grant
    scope: str
    page: str = ""
    version: str = ""


@dataclass(frozen=True, slots=True)
class Closing:
    """Close the socket with this code and reason, after waiting `delay_ms`."""

    code: int
    reason: str
    delay_ms: int = 0


AUTH_CHANGED: Final = Closing(CLOSE_AUTH_CHANGED, "gateway auth changed; reload the page")


def reload_paths(
    admitted: Admitted, changed: list[str], current: Mapping[str, str | None]
) -> list[str]:
    """Return the changed paths a page must reload for; empty when none.

    `current` maps a page file to its version now (`files.current_version`).
    """
    reached = [path for path in changed if change_reaches(admitted.scope, path)]
    shown = admitted.version and current.get(admitted.page) == admitted.version
    if shown and reached == [admitted.page]:
        return []
    return reached


def reload_notice(paths: list[str]) -> str:
    """Return the frame that tells a page to reload, naming what changed."""
    return json.dumps({"type": "reload", "paths": paths})


class LiveSocketMachine:
    """Decide one live-reload socket's `auth` frame with the gateway's auth rules."""

    def __init__(self, access: CanvasAccess, *, remote_ip: str) -> None:
        self._access = access
        self._remote_ip = remote_ip

    @staticmethod
    def timed_out() -> Closing:
        """Return the close for a page that sent no `auth` frame in time."""
        return Closing(CLOSE_HANDSHAKE_TIMEOUT, "handshake timeout")

    @staticmethod
    def receive_binary() -> Closing:
        """Return the close for a binary frame."""
        return Closing(CLOSE_BINARY, "binary frames not supported")

    def receive_text(self, text: str, now_ms: int) -> Admitted | Closing:
        """Decide the first text frame."""
        if len(text.encode()) > CANVAS_AUTH_FRAME_MAX_BYTES:
            return Closing(CLOSE_TOO_LARGE, "auth frame too large")
        try:
            # orjson, not json: json.loads recurses on the C stack and raises RecursionError
            # (not a ValueError) for 8 KiB of brackets; orjson refuses past 1024 levels.
            frame: Any = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            if is_depth_error(exc):
                return Closing(CLOSE_POLICY, f"invalid frame: {nesting_error()}")
            frame = None
        if nesting_exceeds(frame):
            return Closing(CLOSE_POLICY, f"invalid frame: {nesting_error()}")
        if not isinstance(frame, dict) or frame.get("type") != "auth":
            return Closing(CLOSE_POLICY, 'invalid frame: send {"type":"auth", ...} first')
        decision = self._access.admit(credentials_from_frame(frame), self._remote_ip, now_ms)
        if isinstance(decision, Denied):
            return Closing(CLOSE_POLICY, close_reason(decision.message), decision.delay_ms)
        page = frame.get("page")
        resolved = resolve_url_path(page) if isinstance(page, str) else None
        if not isinstance(resolved, CanvasPath):
            return Admitted(decision, "")
        version = frame.get("version")
        if not isinstance(version, str) or not _VERSION.fullmatch(version):
            version = ""
        file = "/".join(resolved.file_segments())
        return Admitted(decision, page_scope(resolved), file, version)
