"""The in-process bus: runs publish their events once; every subscriber sees them in order.

Invariants:
- `publish` never waits and never blocks on a subscriber. Handlers run inline, in
  subscription order, and must only queue work (write to a socket queue, submit a store
  call); one that raises is logged and skipped, and the others still run.
- Each subscriber sees every message published after it subscribed, in publish order.
- A `Subscription` (for consumers that await, e.g. channel adapters) holds at most
  `maxsize` unread messages. When it is full the subscription is ended and marked
  `overflowed` instead of slowing the publisher or dropping a message silently: its
  consumer must resynchronise from the store, as a WebSocket client does after a gap.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Final, Generic, TypeVar

__all__ = ["DEFAULT_SUBSCRIPTION_SIZE", "Bus", "Subscription"]

logger = logging.getLogger(__name__)

DEFAULT_SUBSCRIPTION_SIZE: Final = 4096

T = TypeVar("T")


class Subscription(Generic[T]):
    """A bounded, ordered queue of bus messages for one awaiting consumer."""

    def __init__(self, bus: Bus[T], maxsize: int, accept: Callable[[T], bool] | None) -> None:
        self._bus = bus
        self._maxsize = maxsize
        self._accept = accept
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.overflowed = False

    def _offer(self, message: T) -> None:
        if self.closed or (self._accept is not None and not self._accept(message)):
            return
        if len(self._items) >= self._maxsize:
            logger.warning("bus subscriber fell %d messages behind; ending it", self._maxsize)
            self.overflowed = True
            self.close()
            return
        self._items.append(message)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        """Stop receiving; iteration ends once the queued messages are read."""
        if not self.closed:
            self.closed = True
            self._bus.unsubscribe(self)
            self._wake()

    def __aiter__(self) -> Subscription[T]:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class Bus(Generic[T]):
    """Publish messages once to inline handlers and bounded subscriptions."""

    def __init__(self) -> None:
        self._handlers: list[Callable[[T], None]] = []
        self._subscriptions: list[Subscription[T]] = []

    def add_handler(self, handler: Callable[[T], None]) -> Callable[[], None]:
        """Call `handler` inline for every message; return a function that removes it."""
        self._handlers.append(handler)
        return lambda: self._handlers.remove(handler) if handler in self._handlers else None

    def subscribe(
        self,
        *,
        maxsize: int = DEFAULT_SUBSCRIPTION_SIZE,
        accept: Callable[[T], bool] | None = None,
    ) -> Subscription[T]:
        """Return a bounded subscription to messages `accept` admits (all by default)."""
        subscription = Subscription(self, maxsize, accept)
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription[T]) -> None:
        """Stop delivering to `subscription`."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def publish(self, message: T) -> None:
        """Hand `message` to every handler, then every subscription, without waiting."""
        for handler in list(self._handlers):
            try:
                handler(message)
            except Exception:
                # One broken subscriber must not stop delivery to the others.
                logger.exception("bus handler %r failed", handler)
        for subscription in list(self._subscriptions):
            subscription._offer(message)
