"""A round-robin TCP load balancer on loopback, standing in for HAProxy in cluster tests.

Each accepted connection goes to the next upstream port in turn; an upstream that refuses is
skipped, as a load balancer's health check would. Bytes are relayed untouched, so WebSocket
upgrades pass through. ``pin`` sends every new connection to one upstream (to place a daemon
on a chosen instance).
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["Balancer"]

_CHUNK = 65536


class Balancer:
    """Relay ``127.0.0.1:<port>`` to the upstream ports in turn."""

    def __init__(self, upstreams: list[int]) -> None:
        self.upstreams = list(upstreams)
        self.port = 0
        self.pinned: int | None = None
        self._next = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def pin(self, upstream: int | None) -> None:
        """Send new connections to ``upstream`` only (None: round robin again)."""
        self.pinned = upstream

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        order = (
            [self.pinned]
            if self.pinned is not None
            else [
                self.upstreams[(self._next + i) % len(self.upstreams)]
                for i in range(len(self.upstreams))
            ]
        )
        self._next = (self._next + 1) % len(self.upstreams)
        for port in order:
            with contextlib.suppress(OSError):
                return await asyncio.open_connection("127.0.0.1", port)
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:
            writer.transport.abort()
            return
        up_reader, up_writer = upstream
        for w in (writer, up_writer):
            self._writers.add(w)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
        except (ConnectionError, OSError):
            writer.transport.abort()
        finally:
            self._writers.discard(writer)
