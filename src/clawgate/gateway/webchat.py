"""Serve the WebChat page from package data, with a strict Content-Security-Policy."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Final

from aiohttp import hdrs, web

__all__ = ["ASSET_PREFIX", "WebChat", "security_headers"]

ASSET_PREFIX: Final = "/webchat/"
_PACKAGE: Final = "clawgate.web"
_FOLDER: Final = "webchat"
_INDEX: Final = "index.html"
_CONTENT_TYPES: Final = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
}
# The Host header is echoed into connect-src; anything but host[:port] could add directives.
_HOST: Final = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


def _load_assets() -> dict[str, _Asset]:
    """Read every WebChat file from package data once, so a wheel install serves them too."""
    assets: dict[str, _Asset] = {}
    for entry in resources.files(_PACKAGE).joinpath(_FOLDER).iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        content_type = _CONTENT_TYPES.get(suffix)
        if content_type is None or not entry.is_file():
            continue
        body = entry.read_bytes()
        etag = f'"{hashlib.sha256(body).hexdigest()[:20]}"'
        assets[entry.name] = _Asset(body, content_type, etag)
    if _INDEX not in assets:
        raise RuntimeError(f"the WebChat page is missing from {_PACKAGE}/{_FOLDER}; reinstall")
    return assets


def security_headers(host: str, *, tls: bool) -> dict[str, str]:
    """Return the headers every WebChat response carries: same origin only, no referrer."""
    connect = "'self'"
    if _HOST.fullmatch(host):
        # Browsers differ on whether 'self' covers ws:/wss:; name the socket explicitly.
        connect += f" {'wss' if tls else 'ws'}://{host}"
    policy = "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            # data: for the QR code a channel login hands over as a PNG data URL.
            "img-src 'self' data:",
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        # Revalidate every time: an upgraded gateway must not run yesterday's script.
        "Cache-Control": "no-cache",
    }


class WebChat:
    """The static WebChat files and the two HTTP handlers that serve them."""

    def __init__(self, *, tls: bool) -> None:
        self._tls = tls
        self._assets = _load_assets()

    def index(self, request: web.Request) -> web.Response:
        """Answer `GET /` with the page."""
        return self._serve(request, self._assets[_INDEX])

    async def asset(self, request: web.Request) -> web.Response:
        """Answer `GET /webchat/{name}` with one of the page's files, or 404."""
        asset = self._assets.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound(text="not found\n")
        return self._serve(request, asset)

    def _serve(self, request: web.Request, asset: _Asset) -> web.Response:
        headers = security_headers(request.host, tls=self._tls)
        headers[hdrs.ETAG] = asset.etag
        if request.headers.get(hdrs.IF_NONE_MATCH) == asset.etag:
            return web.Response(status=304, headers=headers)
        return web.Response(
            body=asset.body, content_type=asset.content_type, charset="utf-8", headers=headers
        )
