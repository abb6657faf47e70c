"""The baseline: a bare aiohttp WebSocket server answering gateway-shaped frames.

Run as its own process: `python -m bench.echo_server --port P`. It uses the same aiohttp
settings as the gateway (uvloop, no compression, autoping) and does the least a server can
do per frame: parse the request with orjson and write one response of a requested size.

Requests are `{"type":"req","id":…,"method":…,"params":{"pad":N}}`:

- any other method is answered `{"type":"res","id":…,"ok":true,"payload":{"pad":"x"*N}}`;
- `broadcast` first writes `{"type":"event","event":"presence","payload":{"pad":"x"*N}}`
  to every open socket (serialised once, the same bytes to each), then answers.

`GET /readyz` answers 200 once the socket is bound, like the gateway's.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import signal
from typing import Any, Final

import orjson
import uvloop
from aiohttp import WSMsgType, web

__all__ = ["EchoServer", "main"]

_MAX_PAD: Final = 1 << 20


@functools.lru_cache(maxsize=64)
def _payload(pad: int) -> dict[str, str]:
    """Return a payload whose encoding is `pad` bytes longer than `{"pad":""}`."""
    return {"pad": "x" * max(0, min(pad, _MAX_PAD))}


def _pad_of(params: Any) -> int:
    """Return the requested padding from request params, 0 when absent."""
    if isinstance(params, dict):
        pad = params.get("pad", 0)
        if isinstance(pad, int):
            return pad
    return 0


class EchoServer:
    """Answer every request frame and fan `broadcast` out to all sockets."""

    def __init__(self) -> None:
        self._sockets: set[web.WebSocketResponse] = set()

    async def readyz(self, request: web.Request) -> web.Response:
        """Report readiness (always ready once serving)."""
        return web.json_response({"ready": True})

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        """Serve one socket until it closes."""
        ws = web.WebSocketResponse(compress=False, autoping=True, max_msg_size=25 * 1024 * 1024)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    break
                await self._answer(ws, message.data)
        finally:
            self._sockets.discard(ws)
        return ws

    async def _answer(self, ws: web.WebSocketResponse, text: str) -> None:
        """Answer one request frame."""
        frame = orjson.loads(text)
        payload = _payload(_pad_of(frame.get("params")))
        if frame.get("method") == "broadcast":
            event = orjson.dumps({"type": "event", "event": "presence", "payload": payload})
            for other in list(self._sockets):
                if not other.closed:
                    await other.send_frame(event, WSMsgType.TEXT)
            payload = _payload(0)
        response = {"type": "res", "id": frame.get("id"), "ok": True, "payload": payload}
        await ws.send_frame(orjson.dumps(response), WSMsgType.TEXT)


async def _serve(port: int) -> None:
    """Serve on 127.0.0.1:`port` until SIGTERM or SIGINT."""
    server = EchoServer()
    app = web.Application()
    app.router.add_get("/readyz", server.readyz)
    app.router.add_get("/{tail:.*}", server.websocket)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    """Parse arguments and run the echo server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(_serve(args.port))


if __name__ == "__main__":
    main()
