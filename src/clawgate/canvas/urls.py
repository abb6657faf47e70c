"""The URLs nodes and browsers are given for the canvas host (spec §3.4 `canvasHostUrl`).

Pure. A canvas host bound to one address is reached at that address. One bound to every
address (`0.0.0.0`, `::`) is reached at the host name the client itself used to reach the
gateway (its `Host` header), so a node on the LAN or a tailnet is handed a URL it can open.
Page URLs put the agent's folder first (`<root>/<agentId>/...` is served at
`/<agentId>/...`) and percent-encode every segment.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import quote

from .paths import CanvasPath, resolve_url_path

__all__ = ["canvas_host_url", "canvas_page_url"]

_WILDCARDS: Final = frozenset({"0.0.0.0", "::"})
_HOST_NAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_LOOPBACK: Final = "127.0.0.1"


def _url_host(host: str) -> str:
    """Return `host` as it goes in a URL: IPv6 literals in brackets."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"[{address}]" if address.version == 6 else str(address)


def _reached_name(reached_host: str | None) -> str | None:
    """Return the host part of a `Host` header value when it is a plain name or address."""
    if not reached_host:
        return None
    if reached_host.startswith("["):
        literal, _, _ = reached_host[1:].partition("]")
        try:
            return str(ipaddress.IPv6Address(literal))
        except ValueError:
            return None
    name = reached_host.rsplit(":", 1)[0] if reached_host.count(":") == 1 else reached_host
    return name if _HOST_NAME.fullmatch(name) else None


def canvas_host_url(
    bind_host: str, port: int, *, reached_host: str | None = None, tls: bool = False
) -> str:
    """Return the canvas host's base URL (no trailing slash) for one client.

    Args:
        bind_host: the address the canvas host listens on.
        port: its bound port.
        reached_host: the `Host` header the client sent the gateway, for a wildcard bind.
        tls: whether the canvas host serves TLS.
    """
    host = bind_host
    if host in _WILDCARDS:
        host = _reached_name(reached_host) or _LOOPBACK
    scheme = "https" if tls else "http"
    return f"{scheme}://{_url_host(host)}:{port}"


def canvas_page_url(host_url: str, agent_id: str, path: str = "") -> str:
    """Return the URL of a file in an agent's canvas folder, for `canvas.present|navigate`.

    Args:
        host_url: `canvas_host_url(...)`.
        agent_id: the agent whose folder it is (`main` serves `<root>/main/`).
        path: the file below that folder, `/`-separated; "" or a trailing `/` names a
            folder's `index.html`.

    Raises:
        ValueError: the agent id or path would leave the folder, or name a hidden file.
    """
    raw = "/" + "/".join(quote(part, safe="") for part in (agent_id, *path.split("/")))
    resolved = resolve_url_path(raw)
    if not isinstance(resolved, CanvasPath) or not resolved.segments:
        raise ValueError(f"not a canvas page path: agent {agent_id!r}, path {path!r}")
    if resolved.reserved or resolved.segments[0] != agent_id or "" in path.split("/")[:-1]:
        raise ValueError(f"not a canvas page path: agent {agent_id!r}, path {path!r}")
    return host_url.rstrip("/") + raw
