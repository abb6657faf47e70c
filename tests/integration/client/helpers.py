"""A scripted fake gateway, and helpers the client SDK tests share.

The fake speaks just enough of the handshake to let a test provoke what a correct server
never does: a refused connect, a silent peer, a seq gap, a second response.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from clawgate.client import Backoff

__all__ = [
    "HELLO",
    "FakeGateway",
    "Responder",
    "client_tasks",
    "default_responder",
    "event",
    "fast_backoff",
    "res",
]

Responder = Callable[[web.WebSocketResponse, dict[str, Any]], Awaitable[None]]

HELLO: dict[str, Any] = {
    "type": "hello-ok",
    "protocol": 4,
    "server": {"version": "fake", "connId": "fake-conn", "bootId": "boot"},
    "features": {"methods": [], "events": [], "capabilities": []},
    "snapshot": {},
    "auth": {"role": "operator", "scopes": ["operator.admin"]},
    "policy": {"maxPayload": 26214400, "maxBufferedBytes": 52428800, "tickIntervalMs": 30000},
}


def res(frame: dict[str, Any], payload: Any = None, **extra: Any) -> dict[str, Any]:
    """Return an ok response to ``frame``."""
    return {"type": "res", "id": frame["id"], "ok": True, "payload": payload, **extra}


def event(name: str, payload: Any = None, seq: int | None = None) -> dict[str, Any]:
    """Return an event frame."""
    frame: dict[str, Any] = {"type": "event", "event": name, "payload": payload}
    if seq is not None:
        frame["seq"] = seq
    return frame


async def default_responder(ws: web.WebSocketResponse, frame: dict[str, Any]) -> None:
    """Answer the fake gateway's small method set."""
    method = frame["method"]
    if method == "echo":
        await ws.send_json(res(frame, frame.get("params")))
    elif method == "fail":
        error = {"code": "INVALID_REQUEST", "message": "nope", "details": {"code": "X"}}
        await ws.send_json({"type": "res", "id": frame["id"], "ok": False, "error": error})
    elif method == "agent":
        run = {"runId": "r1"}
        await ws.send_json(res(frame, {**run, "status": "accepted", "acceptedAt": 1}))
        await asyncio.sleep(0.05)
        await ws.send_json(res(frame, {**run, "status": "ok", "summary": "completed"}))
    elif method == "hang":
        pass
    else:
        raise AssertionError(f"unexpected method {method}")


class FakeGateway:
    """A tiny WebSocket server speaking just enough of the handshake."""

    def __init__(self, responder: Responder = default_responder) -> None:
        self.responder = responder
        self.hello = dict(HELLO)
        self.refusal: dict[str, Any] | None = None
        self.challenge_delay = 0.0
        self.connects: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.binary_frames: list[bytes] = []
        self.sockets: list[web.WebSocketResponse] = []
        self.opened = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def ws(self) -> web.WebSocketResponse:
        """Return the most recent authenticated socket."""
        return self.sockets[-1]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for ws in self.sockets:
            await ws.close(code=1012, message=b"service restart")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await asyncio.sleep(self.challenge_delay)
        await ws.send_json(event("connect.challenge", {"nonce": "n", "ts": 0}))
        msg = await ws.receive()
        frame = json.loads(msg.data)
        self.connects.append(frame)
        if self.refusal is not None:
            error = self.refusal
            await ws.send_json({"type": "res", "id": frame["id"], "ok": False, "error": error})
            await ws.close(code=1008, message=error["message"].encode())
            return ws
        await ws.send_json(res(frame, self.hello))
        self.sockets.append(ws)
        self.opened.set()
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.BINARY:
                self.binary_frames.append(msg.data)
                continue
            frame = json.loads(msg.data)
            self.requests.append(frame)
            await self.responder(ws, frame)
        return ws


def fast_backoff() -> Backoff:
    """Return a reconnect schedule of a few tens of ms."""
    return Backoff(0.01, 0.05)


def client_tasks() -> list[asyncio.Task[Any]]:
    """Return the tasks the client SDK started that are still alive."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("clawgate-client")]
