"""A gateway stand-in the test scripts: it serves the real WebChat files and can misbehave.

The real gateway never skips a `seq` and never refuses for rate limits on cue, so the page's
answers to those are tested against this one: it records every frame the page sends and lets
the test push events or drop the socket.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from clawgate.gateway.webchat import ASSET_PREFIX, WebChat

__all__ = ["ScriptedGateway"]

MAIN_KEY = "agent:main:main"


def _hello() -> dict[str, Any]:
    return {
        "type": "hello-ok",
        "protocol": 4,
        "server": {"version": "test", "connId": "c", "bootId": "b"},
        "features": {"methods": [], "events": [], "capabilities": []},
        "snapshot": {
            "presence": [],
            "health": {},
            "stateVersion": {"presence": 0, "health": 0},
            "uptimeMs": 1,
            "sessionDefaults": {
                "defaultAgentId": "main",
                "mainKey": "main",
                "mainSessionKey": MAIN_KEY,
                "scope": "per-sender",
            },
            "authMode": "token",
        },
        "auth": {
            "role": "operator",
            "scopes": ["operator.read", "operator.write", "operator.admin"],
        },
        "policy": {"maxPayload": 1 << 20, "maxBufferedBytes": 1 << 20, "tickIntervalMs": 30_000},
    }


def session(key: str, label: str, message_count: int) -> dict[str, Any]:
    """Return one `sessions.list` row."""
    return {
        "key": key,
        "sessionId": key.rsplit(":", 1)[-1],
        "agentId": "main",
        "label": label,
        "messageCount": message_count,
        "createdAt": 1,
        "updatedAt": 2,
    }


def message(role: str, text: str) -> dict[str, Any]:
    """Return one `chat.history` message."""
    return {"role": role, "content": [{"type": "text", "text": text}], "timestamp": 1}


class ScriptedGateway:
    """Serve WebChat on a loopback port from a thread; answer the page as the test says."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []  # every request frame the page sent
        self.upgrade_urls: list[str] = []  # the path and query of every WebSocket upgrade
        self.history: list[dict[str, Any]] = []  # what chat.history returns
        self.older: list[dict[str, Any]] = []  # the page before it, behind a paging cursor
        self.sessions: list[dict[str, Any]] = []  # what sessions.list returns
        self.refusals: list[dict[str, Any]] = []  # errors for the next connects, in order
        self.failures: dict[str, dict[str, Any]] = {}  # method -> the error it answers with
        self._socket: web.WebSocketResponse | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None
        self._webchat = WebChat(tls=False)
        self.port = 0

    # -- control from the test thread ------------------------------------------------

    def start(self) -> None:
        """Start serving and wait until the port is bound."""
        self._thread.start()
        assert self._ready.wait(10), "scripted gateway did not start"

    def stop(self) -> None:
        """Stop serving."""
        self._call(self._shutdown)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def push(self, event: str, payload: dict[str, Any], seq: int) -> None:
        """Send one event frame to the page."""
        frame = {"type": "event", "event": event, "payload": payload, "seq": seq}
        self._call(lambda: self._send(frame))

    def drop(self, code: int = 1012) -> None:
        """Close the page's socket as a restarting gateway does."""
        self._call(lambda: self._close(code))

    def calls(self, method: str) -> list[dict[str, Any]]:
        """Return the requests of `method` the page sent so far."""
        return [frame for frame in list(self.requests) if frame.get("method") == method]

    def _call(self, action: Callable[[], Any]) -> None:
        asyncio.run_coroutine_threadsafe(action(), self._loop).result(10)

    # -- the server, on its own loop -------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.run_forever()

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get(ASSET_PREFIX + "{name}", self._webchat.asset)
        app.router.add_get("/{tail:.*}", self._root)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._ready.set()

    async def _shutdown(self) -> None:
        # Close the page's socket first: cleanup waits for open handlers to return.
        if self._socket is not None:
            await self._socket.close(code=1001, message=b"going away")
        if self._runner is not None:
            await self._runner.cleanup()

    async def _send(self, frame: dict[str, Any]) -> None:
        assert self._socket is not None, "the page is not connected"
        await self._socket.send_json(frame)

    async def _close(self, code: int) -> None:
        assert self._socket is not None, "the page is not connected"
        await self._socket.close(code=code, message=b"service restart")

    async def _root(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return self._webchat.index(request)
        self.upgrade_urls.append(str(request.rel_url))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._socket = ws
        await ws.send_json(
            {"type": "event", "event": "connect.challenge", "payload": {"nonce": "n", "ts": 1}}
        )
        async for raw in ws:
            if raw.type is not WSMsgType.TEXT:
                break
            frame = raw.json()
            self.requests.append(frame)
            await self._answer(ws, frame)
        return ws

    async def _answer(self, ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
        method, rid = frame["method"], frame["id"]
        if method == "connect" and self.refusals:
            error = self.refusals.pop(0)
            await ws.send_json({"type": "res", "id": rid, "ok": False, "error": error})
            await ws.close(code=1008, message=b"refused")
            return
        if method in self.failures:
            error = self.failures[method]
            await ws.send_json({"type": "res", "id": rid, "ok": False, "error": error})
            return
        payload: Any = {"ok": True}
        if method == "connect":
            payload = _hello()
        elif method == "exec.approval.list":
            payload = {"approvals": []}
        elif method == "sessions.list":
            payload = {"ts": 1, "count": len(self.sessions), "sessions": self.sessions}
        elif method == "chat.history":
            params = frame["params"]
            paging = "before" in params
            messages = self.older if paging else self.history
            payload = {"sessionKey": params["sessionKey"], "sessionId": "s", "messages": messages}
            payload |= {"thinkingLevel": "off", "hasMore": bool(self.older) and not paging}
            if payload["hasMore"]:
                payload["cursor"] = 7
        await ws.send_json({"type": "res", "id": rid, "ok": True, "payload": payload})
