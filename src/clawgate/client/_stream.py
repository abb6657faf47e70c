"""Event subscription: the seq-gap rule and fan-out to bounded per-consumer streams.

Invariants:
- A seq gap goes to the ``on_gap`` callback when one is set; otherwise it is raised once,
  as ``SequenceGapError``, from every stream, in order with the events around it.
- A stream only sees events published after it was created, and never blocks the reader:
  when its queue is full it drops the oldest event.
- Streams continue across reconnects and end only when the client stops for good; one made
  after that waits for the next connection.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ._errors import GatewayTimeoutError, SequenceGapError
from ._frames import Event

__all__ = ["DEFAULT_STREAM_SIZE", "EventHub", "EventStream", "GapCallback"]

GapCallback = Callable[[int, int], None]

_LOGGER = logging.getLogger(__name__)

DEFAULT_STREAM_SIZE = 1024


@dataclass(frozen=True, slots=True)
class _Gap:
    """Marker queued in place of an event: raise a fresh ``SequenceGapError`` here."""

    expected: int
    got: int


class EventStream(AsyncIterator[Event]):
    """Async iterator over the events received after it was created.

    The queue is bounded so a stalled consumer cannot grow memory or stall the socket reader:
    when it is full the oldest event is dropped and counted in ``dropped``. Iteration ends
    when the client closes or loses its connection without reconnecting.
    """

    def __init__(self, hub: EventHub, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self._hub = hub
        self._maxsize = maxsize
        self._items: deque[Event | _Gap] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self.dropped = 0

    def _push(self, item: Event | _Gap) -> None:
        if self._ended:
            return
        if len(self._items) >= self._maxsize:
            self._items.popleft()
            self.dropped += 1
            if self.dropped & (self.dropped - 1) == 0:  # log at 1, 2, 4, 8, ... drops
                _LOGGER.warning("event stream full: %d events dropped so far", self.dropped)
        self._items.append(item)
        self._wake()

    def _end(self) -> None:
        self._ended = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        """Return the next event.

        Raises:
            SequenceGapError: Once, where a gap was detected and no ``on_gap`` callback is set.
            StopAsyncIteration: When the stream has ended and is drained.
        """
        while not self._items:
            if self._ended:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if isinstance(item, _Gap):
            raise SequenceGapError(item.expected, item.got)
        return item

    async def aclose(self) -> None:
        """Stop receiving events; queued ones are discarded."""
        self._hub.unsubscribe(self)
        self._items.clear()
        self._end()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class EventHub:
    """Deliver each event to every live stream; streams are held weakly."""

    def __init__(self, on_gap: GapCallback | None = None) -> None:
        """Create a hub; ``on_gap(expected, got)`` takes seq gaps instead of the streams."""
        self._on_gap = on_gap
        # Weak, so an abandoned iterator is collected instead of filling up forever.
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()

    def subscribe(self, maxsize: int = DEFAULT_STREAM_SIZE) -> EventStream:
        """Return a new stream that receives every event published from now on."""
        stream = EventStream(self, maxsize)
        self._streams.add(stream)
        return stream

    def unsubscribe(self, stream: EventStream) -> None:
        """Stop delivering to ``stream``."""
        self._streams.discard(stream)

    def receive(
        self, event: Event, gap: tuple[int, int] | None, log: logging.LoggerAdapter[Any]
    ) -> None:
        """Deliver ``event``, after the seq ``gap`` (expected, got) found before it, if any."""
        if gap is not None:
            if self._on_gap is not None:
                try:
                    self._on_gap(*gap)
                except Exception:
                    log.exception("on_gap callback failed")
            else:
                self.publish_gap(*gap)
        self.publish(event)

    async def next_event(
        self, name: str | None, timeout: float, predicate: Callable[[Event], bool] | None
    ) -> Event | None:
        """Wait for the next event published from now on that matches; None if streams end.

        Raises:
            GatewayTimeoutError: No matching event within ``timeout``.
            SequenceGapError: A seq gap was published while waiting.
        """
        async with self.subscribe() as stream:
            try:
                async with asyncio.timeout(timeout):
                    async for event in stream:
                        if name is not None and event.event != name:
                            continue
                        if predicate is None or predicate(event):
                            return event
            except TimeoutError:
                what = repr(name) if name is not None else "any"
                raise GatewayTimeoutError(f"no {what} event within {timeout}s") from None
        return None

    def publish(self, event: Event) -> None:
        """Queue ``event`` on every stream."""
        for stream in self._streams:
            stream._push(event)

    def publish_gap(self, expected: int, got: int) -> None:
        """Queue a sequence-gap error on every stream."""
        gap = _Gap(expected, got)
        for stream in self._streams:
            stream._push(gap)

    def end_all(self) -> None:
        """End every current stream; streams created later wait for the next connection."""
        streams = list(self._streams)
        self._streams = weakref.WeakSet()
        for stream in streams:
            stream._end()
