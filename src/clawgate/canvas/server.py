"""The canvas host: its own aiohttp server serving the canvas root, with live reload.

A thin shell over the pure parts: `paths` decides which file a URL names, `files` opens
it without leaving the root, `content` decides the headers and injects the client
script, `access` and `live` decide who may do more than read. Routes, on one catch-all:

- `GET|HEAD /<path>`: the file `<root>/<path>` (a folder's `index.html` for `/<folder>/`),
  for anyone: a plain static read. HTML pages get the live-reload script.
- `GET /__clawgate__/live-reload.js`: that script. `GET /__clawgate__/ws`: the live-reload
  socket (see `live.py`), which needs the gateway's auth.
- Any other method: the gateway's auth (`Authorization: Bearer ...`), then 405: the canvas
  is written through the file system, never over HTTP.

Life: `start(spawn)` creates the root, binds the port and spawns the watcher loop into
the gateway's task group; `stop()` ends the watcher, closes the live sockets and unbinds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from aiohttp import WSMsgType, hdrs, web

from ..protocol.limits import (
    CANVAS_AUTH_FRAME_MAX_BYTES,
    CANVAS_MAX_LIVE_SOCKETS,
    CANVAS_SEND_TIMEOUT_MS,
    Limits,
)
from ..tls import TlsMaterial, server_ssl_context
from .access import CanvasAccess, Denied, credentials_from_headers
from .content import (
    cache_headers,
    content_type,
    entity_tag,
    inject_client,
    is_html,
    missing_page,
    not_modified,
)
from .files import Missing, Opened, Redirect, current_version, open_canvas_file, read_all
from .live import (
    AUTH_CHANGED,
    READY,
    Admitted,
    Closing,
    LiveSocketMachine,
    reload_notice,
    reload_paths,
)
from .paths import CanvasPath, Refusal, resolve_url_path
from .settings import CanvasSettings
from .urls import canvas_host_url, canvas_page_url
from .watcher import watch_root

__all__ = ["CanvasHost"]

logger = logging.getLogger(__name__)

_CHUNK: Final = 256 * 1024
# Files up to this size are read in the same worker-thread call that opens them.
_WHOLE_FILE_BYTES: Final = 1024 * 1024
_STOP_WAIT_S: Final = 2.0
_READ_METHODS: Final = frozenset({hdrs.METH_GET, hdrs.METH_HEAD})


@dataclass(slots=True, eq=False)  # kept in a set by identity
class _LiveSocket:
    ws: web.WebSocketResponse
    admitted: Admitted


def _client_script() -> tuple[bytes, str]:
    body = resources.files("clawgate.web").joinpath("canvas", "live-reload.js").read_bytes()
    return body, f'"{hashlib.sha256(body).hexdigest()[:20]}"'


def _prepare_root(root: Path) -> Path:
    """Create the root if missing (private to the user); return its real path."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(os.path.realpath(root))


class CanvasHost:
    """Serve the canvas root on its own port; tell open pages to reload when files change."""

    def __init__(
        self,
        settings: CanvasSettings,
        *,
        access: CanvasAccess,
        clock: Callable[[], int],
        limits: Limits,
        tls: TlsMaterial | None = None,
    ) -> None:
        """Serve `settings.root`; decide authenticated requests with the gateway's `access`."""
        self._settings = settings
        self._access = access
        self._clock = clock
        self._handshake_s = limits.handshake_timeout_ms / 1000
        self._tls = tls
        self._real_root = settings.root
        self._runner: web.AppRunner | None = None
        self._port = settings.port
        self._sockets: set[_LiveSocket] = set()
        self._opening = 0
        self._stop_watching = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._script = _client_script() if settings.live_reload else None

    # -- life -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the configured one until `start`)."""
        return self._port

    @property
    def root(self) -> Path:
        """The canvas root, symlinks resolved."""
        return self._real_root

    async def start(self, spawn: Callable[..., asyncio.Task[Any]] = asyncio.create_task) -> None:
        """Create the root if missing, bind the port, start watching the root.

        Args:
            spawn: Starts the watcher loop; the gateway passes its task group's.

        Raises:
            OSError: the root cannot be created or the port cannot be bound.
        """
        self._real_root = await asyncio.to_thread(_prepare_root, self._settings.root)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        ssl_context = server_ssl_context(self._tls) if self._tls is not None else None
        site = web.TCPSite(
            self._runner, self._settings.host, self._settings.port, ssl_context=ssl_context
        )
        await site.start()
        for address in self._runner.addresses:
            if isinstance(address, tuple):
                self._port = int(address[1])
                break
        if self._settings.live_reload:
            self._watcher = spawn(
                watch_root(self._real_root, self._changed, self._stop_watching),
                name="canvas-watch",
            )
        logger.info(
            "canvas host on %s serving %s (live reload %s)",
            self.host_url(),
            self._real_root,
            "on" if self._settings.live_reload else "off",
        )

    async def stop(self) -> None:
        """Stop watching, close the live-reload sockets, unbind."""
        self._stop_watching.set()
        watcher = self._watcher
        if watcher is not None and not watcher.done():
            # `wait`, not `await`: however the loop ended (it logs its own failure, or the
            # task group was cancelled first), stopping goes on.
            done, _ = await asyncio.wait({watcher}, timeout=_STOP_WAIT_S)
            if not done:
                watcher.cancel()
                await asyncio.wait({watcher}, timeout=_STOP_WAIT_S)
        for live in list(self._sockets):
            await live.ws.close(code=1001, message=b"canvas host stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- URLs -------------------------------------------------------------------------

    def host_url(self, reached_host: str | None = None) -> str:
        """Return the base URL a client reaching the gateway at `reached_host` can open."""
        return canvas_host_url(
            self._settings.host,
            self._port,
            reached_host=reached_host,
            tls=self._tls is not None,
        )

    def page_url(self, agent_id: str, path: str = "", reached_host: str | None = None) -> str:
        """Return the URL of `<root>/<agent_id>/<path>` for `canvas.present|navigate`.

        Raises:
            ValueError: the agent id or path would leave the agent's folder.
        """
        return canvas_page_url(self.host_url(reached_host), agent_id, path)

    # -- HTTP -------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in _READ_METHODS:
            return await self._refuse_writes(request)
        resolved = resolve_url_path(request.rel_url.raw_path)
        if isinstance(resolved, Refusal):
            logger.info(
                "canvas refused %s from %s: %s",
                request.rel_url.raw_path[:200],
                request.remote,
                resolved.reason,
            )
            status = resolved.kind.value
            return web.Response(
                status=status, text="bad request\n" if status == 400 else "not found\n"
            )
        if resolved.reserved:
            return await self._reserved(request, resolved)
        return await self._serve_file(request, resolved)

    async def _reserved(self, request: web.Request, path: CanvasPath) -> web.StreamResponse:
        tail = "/".join(path.segments[1:])
        if self._script is not None and not path.directory:
            if tail == "ws" and request.method == hdrs.METH_GET:
                return await self._live(request)
            if tail == "live-reload.js":
                body, etag = self._script
                headers = {"Cache-Control": "no-cache", "ETag": etag}
                if request.headers.get(hdrs.IF_NONE_MATCH) == etag:
                    return web.Response(status=304, headers=headers)
                return web.Response(
                    body=body, headers={**headers, "Content-Type": "text/javascript"}
                )
        return web.Response(status=404, text="not found\n")

    async def _serve_file(self, request: web.Request, path: CanvasPath) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(
            None, open_canvas_file, self._real_root, path, _WHOLE_FILE_BYTES
        )
        if isinstance(found, Redirect):
            location = request.rel_url.raw_path + "/"
            if request.rel_url.raw_query_string:
                location += "?" + request.rel_url.raw_query_string
            raise web.HTTPPermanentRedirect(location)
        if isinstance(found, Missing):
            logger.debug("canvas 404 %s: %s", request.rel_url.raw_path[:200], found.reason)
            page = missing_page(request.rel_url.raw_path)
            body = inject_client(page) if self._script is not None else page
            return web.Response(
                status=404,
                body=body,
                headers={"Content-Type": content_type("missing.html"), "Cache-Control": "no-cache"},
            )
        try:
            return await self._send_file(request, found)
        finally:
            if found.body is None:
                os.close(found.fd)

    async def _send_file(self, request: web.Request, found: Opened) -> web.StreamResponse:
        inject = self._script is not None and is_html(found.name)
        mtime_s = found.mtime_ns / 1e9
        etag = entity_tag(found.size, found.mtime_ns, injected=inject)
        headers = cache_headers(etag, mtime_s)
        conditional = not_modified(
            request.headers.get(hdrs.IF_NONE_MATCH),
            request.headers.get(hdrs.IF_MODIFIED_SINCE),
            etag,
            mtime_s,
        )
        if conditional:
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = content_type(found.name)
        loop = asyncio.get_running_loop()
        body = found.body
        if body is None and inject:
            body = await loop.run_in_executor(None, read_all, found.fd)
        if body is not None:
            body = inject_client(body, found.version) if inject else body
            return web.Response(body=body, headers=headers)
        response = web.StreamResponse(headers=headers)
        response.content_length = found.size
        await response.prepare(request)
        if request.method == hdrs.METH_HEAD:
            return response
        left = found.size
        while left > 0:
            chunk = await loop.run_in_executor(None, os.read, found.fd, min(_CHUNK, left))
            if not chunk:
                # The file shrank while being sent: the length promised cannot be kept.
                if request.transport is not None:
                    request.transport.close()
                return response
            await response.write(chunk)
            left -= len(chunk)
        await response.write_eof()
        return response

    async def _refuse_writes(self, request: web.Request) -> web.Response:
        """Answer a method that is not a plain read: the gateway's auth first, then 405."""
        credentials = credentials_from_headers(
            request.headers.get(hdrs.AUTHORIZATION),
            request.headers.get("X-Clawgate-Device-Id"),
            self._access.mode,
        )
        decision = self._access.admit(credentials, request.remote or "", self._clock())
        if isinstance(decision, Denied):
            if decision.retry_after_ms is not None:
                retry_s = str(-(-decision.retry_after_ms // 1000))
                return web.Response(
                    status=429, text=decision.message + "\n", headers={"Retry-After": retry_s}
                )
            await asyncio.sleep(decision.delay_ms / 1000)
            return web.Response(
                status=401,
                text=decision.message + "\n",
                headers={"WWW-Authenticate": 'Bearer realm="clawgate canvas"'},
            )
        return web.Response(
            status=405,
            text="the canvas is read-only over HTTP; write files under its root instead\n",
            headers={"Allow": "GET, HEAD"},
        )

    # -- live reload ------------------------------------------------------------------

    async def _live(self, request: web.Request) -> web.StreamResponse:
        if len(self._sockets) + self._opening >= CANVAS_MAX_LIVE_SOCKETS:
            return web.Response(status=503, text="too many live-reload sockets; retry later\n")
        origin = request.headers.get(hdrs.ORIGIN)
        if not self._access.origin_allowed(origin, request.host, tls=self._tls is not None):
            return web.Response(status=403, text="origin not allowed\n")
        ws = web.WebSocketResponse(
            max_msg_size=CANVAS_AUTH_FRAME_MAX_BYTES + 1, compress=False, autoping=True
        )
        await ws.prepare(request)
        self._opening += 1
        try:
            admitted = await self._admit(request, ws)
        finally:
            self._opening -= 1
        if admitted is None:
            return ws
        live = _LiveSocket(ws, admitted)
        self._sockets.add(live)
        try:
            await ws.send_str(READY)
            async for _ in ws:
                pass  # a page says nothing after `auth`; reading keeps pings answered
        finally:
            self._sockets.discard(live)
        return ws

    async def _admit(self, request: web.Request, ws: web.WebSocketResponse) -> Admitted | None:
        machine = LiveSocketMachine(self._access, remote_ip=request.remote or "")
        outcome: Admitted | Closing
        try:
            async with asyncio.timeout(self._handshake_s):
                message = await ws.receive()
        except TimeoutError:
            outcome = machine.timed_out()
        else:
            if message.type is WSMsgType.TEXT:
                outcome = machine.receive_text(message.data, self._clock())
            elif message.type is WSMsgType.BINARY:
                outcome = machine.receive_binary()
            else:
                return None  # the page left, or the frame was refused by the transport
        if isinstance(outcome, Admitted):
            return outcome
        logger.info("canvas live reload refused from %s: %s", request.remote, outcome.reason)
        if outcome.delay_ms:
            await asyncio.sleep(outcome.delay_ms / 1000)
        await ws.close(code=outcome.code, message=outcome.reason.encode())
        return None

    async def _changed(self, paths: list[str]) -> None:
        """Tell every page these changes reach to reload; drop sockets whose auth lapsed."""
        sends = []
        shown = {live.admitted.page for live in self._sockets if live.admitted.version}
        current = await asyncio.to_thread(self._versions, shown.intersection(paths))
        for live in list(self._sockets):
            reached = reload_paths(live.admitted, paths, current)
            if not self._access.still_valid(live.admitted.grant):
                sends.append(self._close(live, AUTH_CHANGED))
            elif reached:
                sends.append(self._send(live, reload_notice(reached)))
        if sends:
            logger.debug("canvas changed: %s; %d page(s) told", ", ".join(paths[:5]), len(sends))
            await asyncio.gather(*sends)

    def _versions(self, pages: set[str]) -> dict[str, str | None]:
        """Return each page file's version now (blocking: run it in a worker thread)."""
        return {page: current_version(self._real_root, page) for page in pages}

    async def _send(self, live: _LiveSocket, notice: str) -> None:
        try:
            async with asyncio.timeout(CANVAS_SEND_TIMEOUT_MS / 1000):
                await live.ws.send_str(notice)
        except (TimeoutError, ConnectionError):
            self._sockets.discard(live)
            await self._close(live, Closing(1011, "reload notice not delivered"))

    async def _close(self, live: _LiveSocket, closing: Closing) -> None:
        self._sockets.discard(live)
        try:
            async with asyncio.timeout(CANVAS_SEND_TIMEOUT_MS / 1000):
                await live.ws.close(code=closing.code, message=closing.reason.encode())
        except (TimeoutError, ConnectionError):
            pass
