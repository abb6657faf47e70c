"""A loopback TCP proxy that delays and cuts connections at random, for link fault tests.

It sits between a daemon and the hub: the daemon's ``cloud.url`` names the proxy's port and
every accepted connection is relayed to the upstream port. Each chunk waits a random delay
(order within a direction is kept, as TCP keeps it); each connection may be cut (both sides
aborted, so both see a reset) after a random number of relayed bytes, until ``max_cuts``
cuts were made. Counting bytes rather than seconds puts the cuts inside the traffic however
fast the machine is.
All randomness comes from one seeded ``random.Random``, so a failing run can be replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Coroutine
from typing import Any, Final

__all__ = ["TcpProxy"]

_CHUNK: Final = 65536


class TcpProxy:
    """Relay ``127.0.0.1:<port>`` to ``upstream_port``, with seeded delays and cuts."""

    def __init__(
        self,
        upstream_port: int,
        *,
        seed: int = 0,
        max_delay_s: float = 0.0,
        cut_after_bytes: tuple[int, int] | None = None,
        max_cuts: int = 0,
        upstream_host: str = "127.0.0.1",
    ) -> None:
        """Prepare the proxy; nothing listens until ``start``.

        Args:
            upstream_port: Where to relay connections.
            seed: Seed of every random decision.
            max_delay_s: Each chunk waits ``uniform(0, max_delay_s)`` before it is written.
            cut_after_bytes: A connection is cut once ``randint(low, high)`` bytes were relayed
                (both directions together).
            max_cuts: Stop cutting after this many cuts (the link must be able to finish).
            upstream_host: The upstream's address.
        """
        self.upstream = (upstream_host, upstream_port)
        self.max_delay_s = max_delay_s
        self.cut_after_bytes = cut_after_bytes
        self.max_cuts = max_cuts
        self.rng = random.Random(seed)
        #: Connections accepted so far (each is one upgrade attempt of the daemon).
        self.connections = 0
        self.cuts = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._live: set[_Relay] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    def freeze(self) -> None:
        """Hold every byte in both directions, connections open: a half-open link."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Relay again, held bytes first."""
        self._flowing.set()

    async def start(self) -> None:
        """Listen on an ephemeral loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and abort every relayed connection."""
        if self._server is not None:
            self._server.close()
        self.cut_all(count=False)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

    def cut_all(self, *, count: bool = True) -> int:
        """Abort every live connection now; return how many were cut."""
        relays = list(self._live)
        for relay in relays:
            self._abort(relay)
        if count:
            self.cuts += len(relays)
        return len(relays)

    def _abort(self, relay: _Relay) -> None:
        self._live.discard(relay)
        for writer in relay.writers:
            # abort() sends RST at once: the peers see a broken connection, not a clean close.
            writer.transport.abort()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()  # upstream down: the daemon sees a failed connect
            return
        relay = _Relay((writer, up_writer))
        self._live.add(relay)
        self._spawn(self._pump(reader, up_writer, relay))
        self._spawn(self._pump(up_reader, writer, relay))

    def _budget(self, relay: _Relay) -> int | None:
        """Return how many bytes ``relay`` may still carry before its cut (None: no cut)."""
        if self.cut_after_bytes is None or self.cuts >= self.max_cuts:
            return None
        if relay.cut_at is None:
            relay.cut_at = self.rng.randint(*self.cut_after_bytes)
        return relay.cut_at - relay.relayed

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, relay: _Relay
    ) -> None:
        try:
            while data := await reader.read(_CHUNK):
                await self._flowing.wait()
                if self.max_delay_s > 0:
                    await asyncio.sleep(self.rng.uniform(0, self.max_delay_s))
                budget = self._budget(relay)
                if budget is not None and budget <= len(data):
                    if relay in self._live:  # the other direction may have cut it already
                        writer.write(data[: max(0, budget)])  # the cut lands mid-message
                        self.cuts += 1
                        self._abort(relay)
                    return
                relay.relayed += len(data)
                writer.write(data)
                await writer.drain()
            # A clean end is passed on as a clean end (half-close), so close frames arrive.
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
                await writer.drain()
        except (ConnectionError, OSError):
            if relay in self._live:
                self._abort(relay)  # a broken leg breaks the other one too
            return
        relay.ended += 1
        if relay.ended == 2 and relay in self._live:
            self._live.discard(relay)
            for leg in relay.writers:
                leg.close()


class _Relay:
    """One relayed connection: the daemon's leg and the upstream leg."""

    __slots__ = ("cut_at", "ended", "relayed", "writers")

    def __init__(self, writers: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        self.writers = writers
        #: Directions that reached a clean end of stream.
        self.ended = 0
        self.relayed = 0
        #: Bytes after which this relay is cut, drawn when cutting is first armed.
        self.cut_at: int | None = None
