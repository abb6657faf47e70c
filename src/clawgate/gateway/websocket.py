"""A WebSocket response whose inbound frame limit rises after `hello-ok` (spec §3.1, §11).

Before `hello-ok` a frame may be at most 64 KiB; after it, `maxPayload` (25 MiB). aiohttp's
compiled frame reader fixes its limit at construction, so an unauthenticated socket could
make the server buffer 25 MiB before the handshake rule is even checked. This response
swaps in aiohttp's pure-Python reader, whose limit is a plain attribute, so the small
limit is enforced from the frame header on and raised once the client is in.

It relies on aiohttp internals (`_post_start`, the reader classes); `aiohttp<4` is pinned.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web
from aiohttp._websocket.reader_py import WebSocketDataQueue as PythonFrameQueue
from aiohttp._websocket.reader_py import WebSocketReader as PythonFrameReader
from aiohttp.helpers import DEFAULT_CHUNK_SIZE

__all__ = ["GatewayWebSocket"]

CLOSE_TOO_LARGE: Final = 1009
CLOSE_INVALID_UTF8: Final = 1007


class GatewayWebSocket(web.WebSocketResponse):
    """`web.WebSocketResponse` with `raise_frame_limit()` and the spec's close reasons."""

    _authenticated = False

    async def close(self, *, code: int = 1000, message: bytes = b"", drain: bool = True) -> bool:
        """Close; the reader's own 1009/1007 closes get the spec's reason (§2.3, §3.6)."""
        if not message and code == CLOSE_TOO_LARGE:
            message = b"frame too large" if self._authenticated else b"preauth payload too large"
        elif not message and code == CLOSE_INVALID_UTF8:
            message = b"invalid utf-8"
        return await super().close(code=code, message=message, drain=drain)

    def _post_start(self, request: Any, protocol: Any, writer: Any) -> None:
        # aiohttp's own `_post_start`, with the pure-Python reader and its queue in place
        # of the compiled pair (whose size limit cannot change after construction).
        self._ws_protocol = protocol
        self._writer = writer
        self._reset_heartbeat()
        assert self._loop is not None
        self._reader = PythonFrameQueue(request._protocol, DEFAULT_CHUNK_SIZE, loop=self._loop)
        parser = PythonFrameReader(
            self._reader,
            self._max_msg_size,
            compress=bool(self._compress),
            decode_text=self._decode_text,
        )
        self._parser = parser
        callback = None if self._heartbeat is None else self._on_data_received
        request.protocol.set_parser(parser, data_received_cb=callback)
        request.protocol.keep_alive(False)

    def raise_frame_limit(self, max_bytes: int) -> None:
        """Allow inbound frames up to `max_bytes` from now on."""
        self._max_msg_size = max_bytes
        self._authenticated = True
        parser = self._parser
        assert isinstance(parser, PythonFrameReader)
        parser._max_msg_size = max_bytes
