"""``HubBus`` over NATS: wake-ups and takeover notices between hub instances (spec §7.2).

Core NATS (no JetStream): at most once, which is all a hint needs. An instance listens on the
channel of each daemon it holds and of each command a request waits on, but it does not hold
one NATS subscription per channel: a NATS subscription costs a task and a queue in nats-py
(KiBs per held daemon) and a round trip to the server when it is made (one per waiting
request). It holds one per channel *family*, the channel with its last token a wildcard
(``clawgate.daemon.*``, ``clawgate.command.*``, ``clawgate.*``), made by the first
``subscribe`` of the family and kept until ``stop``; handlers are kept by exact channel, and a
message on a channel nobody here listens to is dropped before it is parsed. So every instance
receives every hint of the cluster (a few small messages per command and registration each)
and ``subscribe`` returns once the family's subscription is at the server, so a notice
published after that reaches the handler. While the server is away nats-py reconnects by
itself and re-subscribes; hints sent in the gap are lost and repaired by the 5 s sweep and the
1 s poll (``core``). nats-py is imported in ``start``, so a single SQLite hub never loads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

import orjson

from .bus import BusHandler, Subscription

__all__ = ["NatsBus", "channel_family"]

logger = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S: Final = 5.0
_RECONNECT_WAIT_S: Final = 0.5
#: Messages buffered for one channel family before NATS drops them (hints: losing one is
#: repaired); a registration storm of 10,000 daemons sends 10,000 takeover notices at once.
_PENDING_PER_FAMILY: Final = 65_536


def channel_family(channel: str) -> str:
    """Return the NATS subject that carries ``channel``: its last token made a wildcard."""
    head, dot, _last = channel.rpartition(".")
    return f"{head}{dot}*"


class _NatsSubscription:
    def __init__(self, bus: NatsBus, channel: str, handler: BusHandler) -> None:
        self._bus = bus
        self._channel = channel
        self._handler = handler
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus._remove(self._channel, self._handler)


class NatsBus:
    """Publish/subscribe of JSON hints on NATS subjects named like the channels."""

    def __init__(self, url: str, *, name: str = "clawgate-hub") -> None:
        """Prepare a bus for ``url``; nothing connects until ``start``."""
        self._url = url
        self._name = name
        self._nc: Any = None
        self._handlers: dict[str, list[BusHandler]] = {}
        #: Channel family -> the subscribing (then subscribed) of its NATS subscription.
        self._families: dict[str, asyncio.Future[None]] = {}
        #: Set by the hub to observe each delivered message (for /metrics).
        self.on_delivery: Any = None

    async def start(self) -> None:
        """Connect; nats-py keeps reconnecting after this for as long as the bus runs.

        Raises:
            ConnectionError: the NATS server cannot be reached now.
        """
        import nats

        try:
            self._nc = await nats.connect(
                servers=[self._url],
                name=self._name,
                connect_timeout=_CONNECT_TIMEOUT_S,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=_RECONNECT_WAIT_S,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        except Exception as exc:
            raise ConnectionError(f"cannot reach the NATS server: {exc}") from None

    async def stop(self) -> None:
        """Drop every subscriber and close the connection."""
        self._handlers.clear()
        self._families.clear()
        nc, self._nc = self._nc, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5)

    async def ping(self) -> None:
        """Raise ``ConnectionError`` unless the server answers now."""
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise ConnectionError("the NATS server is not connected")
        try:
            await nc.flush(timeout=2)
        except Exception as exc:
            raise ConnectionError(f"the NATS server does not answer: {exc}") from None

    async def subscribe(self, channel: str, handler: BusHandler) -> Subscription:
        """Add ``handler`` to ``channel``; the family's first subscribes at the server."""
        self._handlers.setdefault(channel, []).append(handler)
        subscription = _NatsSubscription(self, channel, handler)
        family = channel_family(channel)
        subscribed = self._families.get(family)
        if subscribed is None:
            if self._nc is None:
                return subscription
            subscribed = asyncio.ensure_future(self._subscribe_family(family))
            self._families[family] = subscribed
        try:
            await asyncio.shield(subscribed)
        except Exception as exc:
            # The sweep and the poll stand in for the hints this subscription misses.
            logger.warning("cannot subscribe to %s on NATS: %s", family, exc)
        return subscription

    async def _subscribe_family(self, family: str) -> None:
        nc = self._nc
        try:
            await nc.subscribe(family, cb=self._deliver, pending_msgs_limit=_PENDING_PER_FAMILY)
        except BaseException:
            # Not made: the family's next subscribe tries again.
            self._families.pop(family, None)
            raise
        # Once flushed the server has the subscription: later notices reach us. If the flush
        # fails the subscription stands (nats-py re-sends it when it reconnects).
        try:
            await nc.flush(timeout=2)
        except Exception as exc:
            logger.warning("NATS did not confirm the subscription to %s: %s", family, exc)

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Publish ``message``; a bus that is down drops it (hints are repaired)."""
        nc = self._nc
        if nc is None or nc.is_closed:
            return
        try:
            await nc.publish(channel, orjson.dumps(message))
        except Exception as exc:
            logger.debug("dropped a hint on %s: %s", channel, exc)

    def subscribers(self, channel: str) -> int:
        """Return how many local handlers listen on ``channel``."""
        return len(self._handlers.get(channel, ()))

    async def _deliver(self, msg: Any) -> None:
        handlers = self._handlers.get(msg.subject)
        if not handlers:
            return
        try:
            message = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            logger.warning("ignoring a message on %s that is not JSON", msg.subject)
            return
        if not isinstance(message, dict):
            return
        if self.on_delivery is not None:
            self.on_delivery(message)
        for handler in tuple(handlers):
            try:
                handler(message)
            except Exception:
                logger.exception("a bus handler failed")

    def _remove(self, channel: str, handler: BusHandler) -> None:
        handlers = self._handlers.get(channel)
        if not handlers or handler not in handlers:
            return
        handlers.remove(handler)
        if not handlers:
            del self._handlers[channel]

    async def _on_error(self, exc: Exception) -> None:
        logger.warning("NATS: %s", exc)

    async def _on_disconnected(self) -> None:
        logger.warning("disconnected from the NATS server; reconnecting")

    async def _on_reconnected(self) -> None:
        logger.info("reconnected to the NATS server")
