"""A local stand-in for an OpenAI-compatible server: `POST /v1/chat/completions`, streaming.

It speaks the real wire format: `data: {chat.completion.chunk}` lines, a blank line after
each, and `data: [DONE]`. Each request takes the next behaviour from `script` (default
`"ok"`): `"ok"` streams the reply word by word, `"429"`/`"500"` answer that status,
`"drop"` streams two chunks and then cuts the connection, `"hang"` never sends a byte.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from typing import Any

from aiohttp import web

__all__ = ["FakeOpenAI"]


class FakeOpenAI:
    """A running fake; `base_url` goes into `[agent.openai] base_url`."""

    def __init__(self, api_key: str, reply: str = "Hello from the model") -> None:
        self.api_key = api_key
        self.reply = reply
        self.script: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.chunk_delay_s = 0.0
        self.cancelled = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    @staticmethod
    def _error(status: int, message: str, kind: str) -> web.Response:
        body = {"error": {"message": message, "type": kind, "code": None}}
        return web.json_response(body, status=status)

    def _chunk(self, content: str | None, finish: str | None) -> bytes:
        delta = {} if content is None else {"content": content}
        chunk = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "fake-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided", "invalid_request_error")
        body = await request.json()
        self.requests.append(body)
        behaviour = self.script.popleft() if self.script else "ok"
        if behaviour in ("429", "500"):
            return self._error(int(behaviour), f"fake {behaviour}", "server_error")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if behaviour == "hang":
            await asyncio.sleep(3600)
        words = self.reply.split(" ")
        try:
            await response.write(self._chunk("", None))  # role-only first chunk, as OpenAI
            for index, word in enumerate(words):
                if behaviour == "drop" and index == 2:
                    assert request.transport is not None
                    request.transport.close()
                    return response
                await response.write(self._chunk(word if index == 0 else " " + word, None))
                if self.chunk_delay_s:
                    await asyncio.sleep(self.chunk_delay_s)
            await response.write(self._chunk(None, "stop"))
            await response.write(b"data: [DONE]\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            self.cancelled.set()
            raise
        return response
