"""Serve an OpenClaw Control UI bundle (`[gateway] control_ui_root`) at `/control/`.

Loaded only when the setting is present: a gateway without it never imports this module.
The bundle is a static single-page app; the gateway stamps its mount path into
`index.html`, answers `/control-ui-config.json` and serves `index.html` for every
client-side route. The WebSocket it opens (`ws://host/control`) is the gateway's own
endpoint: upgrades never reach this module.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import hdrs, web

from ..agents.sessions import DEFAULT_AGENT_ID
from ..config import AgentSection
from .methods._common import avatar_of
from .webchat import security_headers

__all__ = [
    "CONFIG_FILE",
    "MOUNT",
    "ControlUi",
    "control_ui_csp",
    "inline_script_hashes",
    "stamp_index",
]

MOUNT: Final = "/control"
CONFIG_FILE: Final = "/control-ui-config.json"
BASE_PATH_ATTRIBUTE: Final = "data-openclaw-control-ui-base-path"
_INDEX: Final = "index.html"
_CONTENT_TYPES: Final = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".txt": "text/plain",
    ".wasm": "application/wasm",
    ".woff2": "font/woff2",
}
_SCRIPT: Final = re.compile(r"<script(\s[^>]*)?>(.*?)</script>", re.IGNORECASE | re.DOTALL)
_SRC: Final = re.compile(r"\ssrc\s*=", re.IGNORECASE)
_HTML_TAG: Final = re.compile(r"<html\b", re.IGNORECASE)
_RELATIVE: Final = re.compile(r'(\s(?:src|href))="\./')
# Same rule as WebChat's: anything but host[:port] could add CSP directives.
_HOST: Final = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
# Hashed file names under assets/ never change content: let the browser keep them.
_IMMUTABLE: Final = "public, max-age=31536000, immutable"


def stamp_index(text: str, mount: str) -> str:
    """Return `index.html` with the mount path stamped in and `./` links made absolute.

    The page reads the base path from the `<html>` attribute; relative links would
    otherwise resolve against a client-side route (`/control/chat/` + `./assets/…`).
    """
    text = _RELATIVE.sub(lambda m: f'{m.group(1)}="{mount}/', text)
    attribute = f' {BASE_PATH_ATTRIBUTE}="{html.escape(mount, quote=True)}"'
    return _HTML_TAG.sub(lambda m: m.group(0) + attribute, text, count=1)


def inline_script_hashes(text: str) -> list[str]:
    """Return the CSP `sha256-…` source of every inline script in `text`."""
    hashes = []
    for match in _SCRIPT.finditer(text):
        attributes, body = match.group(1) or "", match.group(2)
        if _SRC.search(attributes) or not body:
            continue
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        hashes.append(f"'sha256-{digest}'")
    return hashes


def control_ui_csp(host: str, *, tls: bool, script_hashes: list[str]) -> str:
    """Return the page's Content-Security-Policy: its own files and its own gateway only.

    Tighter than OpenClaw's (no third-party hosts); inline styles stay allowed because the
    bundle's components set them.
    """
    connect = "'self'"
    if _HOST.fullmatch(host):
        connect += f" {'wss' if tls else 'ws'}://{host}"
    return "; ".join(
        (
            "default-src 'self'",
            "base-uri 'none'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "form-action 'none'",
            " ".join(("script-src 'self'", *script_hashes)),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "media-src 'self' data: blob:",
            "font-src 'self'",
            "worker-src 'self'",
            f"connect-src {connect} data:",
        )
    )


@dataclass(frozen=True, slots=True)
class _Index:
    body: bytes
    script_hashes: list[str]


class ControlUi:
    """The Control UI's HTTP pages: files of the bundle, the stamped index, its config."""

    def __init__(self, root: Path, *, agent: AgentSection, version: str, tls: bool) -> None:
        self._root = root.resolve()
        self._agent = agent
        self._version = version
        self._tls = tls
        self._index: _Index | None = None

    def serves(self, path: str) -> bool:
        """Whether a GET of `path` (not a WebSocket upgrade) is one of this UI's pages."""
        return path in (CONFIG_FILE, MOUNT) or path.startswith(MOUNT + "/")

    async def page(self, request: web.Request) -> web.StreamResponse:
        """Answer a GET that `serves` claimed."""
        path = request.path
        if path in (CONFIG_FILE, MOUNT + CONFIG_FILE):
            return self._config(request)
        if path == MOUNT:
            raise web.HTTPFound(MOUNT + "/")
        relative = path[len(MOUNT) + 1 :]
        file = self._file(relative)
        if file is not None:
            return self._static(request, file)
        if "." in relative.rsplit("/", 1)[-1]:
            # A missing asset is a 404, not the page: a stale script must fail loudly.
            raise web.HTTPNotFound(text="not found\n")
        return self._serve_index(request)

    def _file(self, relative: str) -> Path | None:
        """Return the bundle file at `relative`, or None (never a path outside the root)."""
        if not relative or relative == _INDEX:
            return None
        candidate = (self._root / relative).resolve()
        if not candidate.is_relative_to(self._root) or not candidate.is_file():
            return None
        return candidate

    def _headers(self, request: web.Request, script_hashes: list[str]) -> dict[str, str]:
        """Return WebChat's headers with this page's own Content-Security-Policy."""
        headers = security_headers(request.host, tls=self._tls)
        headers["Content-Security-Policy"] = control_ui_csp(
            request.host, tls=self._tls, script_hashes=script_hashes
        )
        return headers

    def _load_index(self) -> _Index:
        if self._index is None:
            try:
                text = (self._root / _INDEX).read_text(encoding="utf-8")
            except OSError:
                raise web.HTTPServiceUnavailable(
                    text=f"no Control UI at {self._root}: run `clawgate ui fetch-openclaw`\n"
                ) from None
            stamped = stamp_index(text, MOUNT)
            self._index = _Index(stamped.encode(), inline_script_hashes(stamped))
        return self._index

    def _serve_index(self, request: web.Request) -> web.Response:
        index = self._load_index()
        return web.Response(
            body=index.body,
            content_type="text/html",
            charset="utf-8",
            headers=self._headers(request, index.script_hashes),
        )

    def _static(self, request: web.Request, file: Path) -> web.StreamResponse:
        headers = self._headers(request, [])
        if file.parent.name == "assets":
            headers[hdrs.CACHE_CONTROL] = _IMMUTABLE
        content_type = _CONTENT_TYPES.get(file.suffix.lower(), "application/octet-stream")
        headers[hdrs.CONTENT_TYPE] = content_type
        # FileResponse serves a sibling .br/.gz when the browser accepts it.
        return web.FileResponse(file, headers=headers)

    def _config(self, request: web.Request) -> web.Response:
        body = {
            "basePath": MOUNT,
            "assistantName": self._agent.name,
            "assistantAvatar": avatar_of(self._agent.name, self._agent.avatar),
            "assistantAgentId": DEFAULT_AGENT_ID,
            "serverVersion": self._version,
        }
        headers = self._headers(request, [])
        return web.json_response(body, headers=headers)
