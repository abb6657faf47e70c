"""HTTP routes on the gateway port: ops endpoints, the schema, WebChat, the WebSocket upgrade."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from aiohttp import hdrs, web

from ..protocol.handshake import origin_allowed
from ..protocol.run_identity import IDENTITY_CHALLENGE_HEADER, IDENTITY_PROOF_HEADER, identity_proof
from .channel_service import ChannelService
from .connection import Connection, ConnectionDeps
from .connections import ConnectionTable
from .schema_export import protocol_schema_bytes
from .services import GatewayInfo
from .webchat import ASSET_PREFIX, WebChat
from .websocket import GatewayWebSocket

__all__ = ["HttpSurface", "PageSurface", "add_http_routes"]


class HttpSurface(Protocol):
    """A set of HTTP routes served on the gateway port (the OpenAI API, webhooks)."""

    def add_routes(self, app: web.Application) -> None:
        """Attach the surface's routes to `app`."""


class PageSurface(Protocol):
    """Pages under a path prefix whose WebSocket upgrades stay the gateway's (Control UI)."""

    def serves(self, path: str) -> bool:
        """Whether a plain GET of `path` is one of these pages."""

    async def page(self, request: web.Request) -> web.StreamResponse:
        """Answer a GET that `serves` claimed."""


def add_http_routes(
    app: web.Application,
    *,
    connections: ConnectionTable,
    deps: ConnectionDeps,
    info: GatewayInfo,
    tls: bool,
    surfaces: Iterable[HttpSurface] = (),
    pages: PageSurface | None = None,
    channels: ChannelService | None = None,
) -> None:
    """Attach every HTTP route, the enabled surfaces and the catch-all WebSocket upgrade."""
    webchat = WebChat(tls=tls)
    limits = deps.limits

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "status": "live"})

    async def readyz(request: web.Request) -> web.Response:
        ready = connections.ready and not connections.stopping
        failing = [] if ready else ["gateway"]
        body: dict[str, Any] = {
            "ready": ready,
            "failing": failing,
            "uptimeMs": info.uptime_ms(),
            "bootId": info.boot_id,
        }
        if channels is not None:
            # Channel accounts show here; they fail readiness only with
            # `[channels] required_for_ready = true`.
            channels_ready, body["channels"] = channels.readiness()
            if not channels_ready:
                failing.append("channels")
                body["ready"] = ready = False
        response = web.json_response(body, status=200 if ready else 503)
        # A local client checks it reached this process before it sends a credential.
        challenge = request.headers.get(IDENTITY_CHALLENGE_HEADER)
        proof = identity_proof(info.identity_key, challenge) if challenge else None
        if proof is not None:
            response.headers[IDENTITY_PROOF_HEADER] = proof
        return response

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=deps.metrics.render(), content_type="text/plain", charset="utf-8")

    async def schema(request: web.Request) -> web.Response:
        return web.Response(body=protocol_schema_bytes(), content_type="application/json")

    async def upgrade_or_index(request: web.Request) -> web.StreamResponse:
        if request.headers.get(hdrs.UPGRADE, "").lower() != "websocket":
            if request.path == "/":
                return webchat.index(request)
            if pages is not None and pages.serves(request.path):
                return await pages.page(request)
            raise web.HTTPNotFound(text="not found\n")
        # Before admission: a foreign page must not hold one of the per-IP slots (spec §5.5).
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is not None and not origin_allowed(origin, deps.access.allowed_origins):
            forbidden = web.Response(
                status=403, text="origin not allowed; list it in gateway.allowed_origins\n"
            )
            forbidden.force_close()  # nor one of the address's HTTP connections (issue 17)
            return forbidden
        refusal = connections.admission_refusal(request.remote or "")
        if refusal is not None:
            raise web.HTTPServiceUnavailable(text=f"{refusal}; retry later\n")
        ws = GatewayWebSocket(
            # Until hello-ok a frame may be 64 KiB (+1 so the handshake machine, not the
            # reader, answers a frame of exactly the limit); `_open` raises it.
            max_msg_size=limits.preauth_max_payload + 1,
            compress=False,
            autoping=True,
            timeout=2.0,
        )
        await ws.prepare(request)
        await connections.serve(Connection(deps, ws, request))
        return ws

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/protocol.schema.json", schema)
    app.router.add_get(ASSET_PREFIX + "{name}", webchat.asset)

    async def not_found(request: web.Request) -> web.Response:
        # Any method on a path no route claims: a disabled surface looks like no surface.
        raise web.HTTPNotFound(text="not found\n")

    for surface in surfaces:
        surface.add_routes(app)
    app.router.add_get("/{tail:.*}", upgrade_or_index)
    app.router.add_route("*", "/{tail:.*}", not_found)
