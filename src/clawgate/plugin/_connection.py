"""One live socket to the daemon: the reader, the single writer, events and request tasks.

Invariants:
- The reader task alone reads the socket and the writer task alone writes it, so frames never
  interleave; the writer sends every frame queued so far in one write. The outbox is
  bounded: a sender waits instead of growing memory.
- Events are queued without bound (they are rare and small, and the reader must not block on
  them) and handed to the handlers by one task, in arrival order.
- Each request from the daemon runs in its own task, so a slow handler holds up no other.
- The first unusable frame from the daemon is answered with one connection-level error,
  given ``CLOSE_FLUSH_TIMEOUT`` to flush, and ends the connection.
- Every task runs in the task group given to ``start``; ``abort`` fails the pending requests
  and cancels every task, so nothing outlives the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from pathlib import Path
from typing import Any, Final

from ..protocol.ipc.frames import Event, Frame, FrameError, Request, Response, encode_error
from ..protocol.ipc.framing import MAX_FRAME_BYTES
from ..protocol.ipc.reader import FrameReader
from ._errors import NotConnectedError
from ._handlers import Handlers
from ._requests import PendingRequests

__all__ = [
    "CLOSE_FLUSH_TIMEOUT",
    "Opener",
    "PluginConnection",
    "PluginLogger",
    "default_socket_path",
    "open_unix",
]

CLOSE_FLUSH_TIMEOUT: Final = 1.0
READ_CHUNK: Final = 64 * 1024
OUTBOX_MAX: Final = 256

Opener = Callable[[str], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

_log = logging.getLogger(__name__)


def default_socket_path() -> Path:
    """Return ``$CLAWGATE_HOME/gateway.sock`` (home defaults to ``~/.clawgate``)."""
    home = os.environ.get("CLAWGATE_HOME")
    base = Path(home) if home else Path.home() / ".clawgate"
    return base / "gateway.sock"


async def open_unix(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open the daemon socket; our own decoder enforces the frame limit."""
    return await asyncio.open_unix_connection(path, limit=MAX_FRAME_BYTES + 2)


class PluginLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefix every line with the plugin name and connection id."""

    def __init__(self, logger: logging.Logger, plugin: str, conn: Any = "-") -> None:
        """Log to ``logger`` for ``plugin`` on connection ``conn`` (``-`` until named)."""
        super().__init__(logger, {"plugin": plugin, "conn": conn})

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = self.extra or {}
        return f"[{extra.get('plugin')} {extra.get('conn')}] {msg}", kwargs


class PluginConnection:
    """One live socket to the daemon: reader, single writer, event and handler tasks."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        handlers: Handlers,
        plugin: str,
    ) -> None:
        """Wrap an open socket; nothing runs until ``start``."""
        self._reader = reader
        self._writer = writer
        self._handlers = handlers
        self._frames = FrameReader()
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=OUTBOX_MAX)
        self._events: asyncio.Queue[Event] = asyncio.Queue()
        self._pending = PendingRequests()
        self._tasks: set[asyncio.Task[None]] = set()
        self._tg: asyncio.TaskGroup | None = None
        self._plugin = plugin
        self.closed = asyncio.Event()
        self.log = PluginLogger(_log, plugin)

    def start(self, tg: asyncio.TaskGroup) -> None:
        """Start the reader, writer and event tasks in ``tg``."""
        self._tg = tg
        self._spawn(self._read_loop())
        self._spawn(self._write_loop())
        self._spawn(self._event_loop())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the connection's task group, known to ``abort``."""
        assert self._tg is not None
        task = self._tg.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def name(self, conn_id: Any) -> None:
        """Tag the connection's log lines with the id the daemon gave it."""
        self.log = PluginLogger(_log, self._plugin, conn_id)

    def abort(self) -> None:
        """End the connection: fail pending requests and cancel every task (idempotent)."""
        self.closed.set()
        self._pending.fail_all()
        for task in list(self._tasks):
            task.cancel()

    async def close_transport(self) -> None:
        """Close the socket, waiting briefly for it to go."""
        self._writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_FLUSH_TIMEOUT):
                await self._writer.wait_closed()

    async def send(self, data: bytes) -> None:
        """Queue one encoded frame for the writer."""
        if self.closed.is_set():
            raise NotConnectedError()
        await self._outbox.put(data)

    async def request(self, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send a request and wait for its payload.

        Raises:
            PluginError: The daemon's error, or ``TIMEOUT``.
            NotConnectedError: If the connection is or goes down.
        """
        if self.closed.is_set():
            raise NotConnectedError()
        return await self._pending.request(self.send, method, params, timeout)

    async def _write_loop(self) -> None:
        """Write the queued frames, all that are waiting in one call, until the socket fails."""
        outbox = self._outbox
        try:
            while True:
                # Whole frames in queue order, so a burst of replies costs one syscall and
                # wakes the daemon once.
                frames = [await outbox.get()]
                while not outbox.empty():
                    frames.append(outbox.get_nowait())
                try:
                    self._writer.write(b"".join(frames))
                    await self._writer.drain()
                finally:
                    for _ in frames:
                        outbox.task_done()
        except (ConnectionError, OSError) as exc:
            self.log.info("write failed: %s", type(exc).__name__)
            self.closed.set()

    async def _read_loop(self) -> None:
        """Read and dispatch frames until end of stream, a socket error or a bad frame."""
        try:
            while True:
                chunk = await self._reader.read(READ_CHUNK)
                if not chunk:
                    self.log.info("daemon closed the connection")
                    break
                for frame in self._frames.receive_data(chunk):
                    self._dispatch(frame)
                error = self._frames.error
                if error is not None:
                    self.log.warning("bad frame from daemon: %s %s", error.code, error.message)
                    await self._fail(error)
                    break
        except (ConnectionError, OSError) as exc:
            self.log.info("read failed: %s", type(exc).__name__)
        finally:
            self.closed.set()

    async def _fail(self, exc: FrameError) -> None:
        """Send a connection-level error frame and give the writer 1 s to flush it."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_FLUSH_TIMEOUT):
                await self.send(encode_error(exc.reply_id, exc))
                await self._outbox.join()

    def _dispatch(self, frame: Frame) -> None:
        """Route one frame: a request to its own task, a response, an event to the queue."""
        if isinstance(frame, Request):
            self._spawn(self._handle_request(frame))
        elif isinstance(frame, Response):
            self._resolve(frame)
        elif isinstance(frame, Event):
            self._events.put_nowait(frame)
        else:
            self.log.debug("ignoring frame of unknown type %.64r", frame.type)

    def _resolve(self, frame: Response) -> None:
        """Hand a response to its request; log a connection-level error or a stray reply."""
        if frame.id is None:
            err = frame.error
            self.log.error(
                "connection-level error from daemon: %s %s",
                err.code if err else "?",
                err.message if err else "",
            )
            return
        if not self._pending.resolve(frame.id, frame):
            self.log.debug("discarding response to unknown or expired request %s", frame.id)

    async def _handle_request(self, req: Request) -> None:
        """Answer one request from the daemon; drop the answer if the connection is gone."""
        data = await self._handlers.answer(req, self.log)
        with contextlib.suppress(NotConnectedError):
            await self.send(data)

    async def _event_loop(self) -> None:
        """Hand each queued event to its handlers, one event at a time."""
        while True:
            ev = await self._events.get()
            if ev.event == "daemon.shutdown":
                self.log.info("daemon shutting down (%s)", ev.payload.get("reason"))
            await self._handlers.deliver(ev, self.log)
