"""Wake-ups between whoever writes an item and whoever holds the daemon's link (spec §7.2).

Messages are hints, never the source of truth: a receiver reloads the item from the store,
and lost hints are repaired by re-sends and polling. ``LocalBus`` routes within one process;
``nats_bus.NatsBus`` implements the same ``HubBus`` for several instances.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["BusHandler", "HubBus", "LocalBus", "Subscription", "command_channel", "daemon_channel"]

logger = logging.getLogger(__name__)

BusHandler = Callable[[dict[str, Any]], None]


def daemon_channel(daemon_id: str) -> str:
    """Return the channel for wake-ups and takeovers of one daemon."""
    return f"clawgate.daemon.{daemon_id}"


def command_channel(command_id: str) -> str:
    """Return the channel announcing acks of one command."""
    return f"clawgate.command.{command_id}"


class Subscription(Protocol):
    """A handle that ends one subscription."""

    def close(self) -> None:
        """Stop delivering messages to the handler; idempotent."""
        ...


class HubBus(Protocol):
    """Publish/subscribe of small JSON hints on named channels."""

    async def start(self) -> None:
        """Connect."""
        ...

    async def stop(self) -> None:
        """Disconnect; later publishes are dropped."""
        ...

    async def ping(self) -> None:
        """Raise ``ConnectionError`` unless the bus is reachable."""
        ...

    async def subscribe(self, channel: str, handler: BusHandler) -> Subscription:
        """Call ``handler`` on the event loop for each message on ``channel``.

        Returns once a message published after the call would reach ``handler``.
        """
        ...

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Send ``message`` to every subscriber of ``channel``, at most once."""
        ...


class _LocalSubscription:
    def __init__(self, bus: LocalBus, channel: str, handler: BusHandler) -> None:
        self._bus = bus
        self._channel = channel
        self._handler = handler

    def close(self) -> None:
        self._bus._remove(self._channel, self._handler)


class LocalBus:
    """``HubBus`` inside one process: handlers are called soon, on the same loop."""

    def __init__(self) -> None:
        """Start with no subscribers."""
        self._handlers: dict[str, list[BusHandler]] = {}
        self._running = False

    async def start(self) -> None:
        """Accept publishes."""
        self._running = True

    async def stop(self) -> None:
        """Drop every subscriber."""
        self._running = False
        self._handlers.clear()

    async def ping(self) -> None:
        """Raise ``ConnectionError`` when stopped."""
        if not self._running:
            raise ConnectionError("the bus is stopped")

    async def subscribe(self, channel: str, handler: BusHandler) -> Subscription:
        """Add ``handler`` to ``channel``."""
        self._handlers.setdefault(channel, []).append(handler)
        return _LocalSubscription(self, channel, handler)

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Schedule every handler of ``channel`` with ``message``."""
        if not self._running:
            return
        loop = asyncio.get_running_loop()
        for handler in tuple(self._handlers.get(channel, ())):
            loop.call_soon(self._deliver, handler, message)

    def subscribers(self, channel: str) -> int:
        """Return how many handlers listen on ``channel``."""
        return len(self._handlers.get(channel, ()))

    @staticmethod
    def _deliver(handler: BusHandler, message: dict[str, Any]) -> None:
        # A failing handler must not stop the others; the hint is repaired by polling.
        try:
            handler(message)
        except Exception:
            logger.exception("a bus handler failed")

    def _remove(self, channel: str, handler: BusHandler) -> None:
        handlers = self._handlers.get(channel)
        if handlers and handler in handlers:
            handlers.remove(handler)
            if not handlers:
                del self._handlers[channel]
