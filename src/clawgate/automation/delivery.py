"""Where automated replies go: one deliverer per channel name.

Every channel of the channel layer is registered under its name and sends through its
adapter: WebChat's (`channel` "webchat", the default, `to` a session key) appends the
reply to that session's transcript and shows it live on open pages; each configured
messaging channel (`telegram`, ...) sends to a peer id. Heartbeats and cron jobs reach any
of them with no change of theirs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..channels.webchat import WEBCHAT

__all__ = [
    "WEBCHAT",
    "Deliverer",
    "DeliveryError",
    "DeliveryRouter",
    "DeliveryTarget",
]


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """A channel and a peer on it (for WebChat: a session key)."""

    channel: str
    to: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.to}"


class DeliveryError(Exception):
    """A reply could not be delivered; the message says why (never a secret)."""


class Deliverer(Protocol):
    """Sends text to a peer of one channel."""

    async def deliver(self, target: DeliveryTarget, text: str, *, label: str) -> None:
        """Deliver `text`; `label` says what produced it ("heartbeat", "cron: <name>").

        Raises:
            DeliveryError: it could not be delivered.
        """


class DeliveryRouter:
    """Deliverers by channel name."""

    def __init__(self) -> None:
        self._deliverers: dict[str, Deliverer] = {}

    def add(self, channel: str, deliverer: Deliverer) -> None:
        """Deliver to `channel` through `deliverer`."""
        self._deliverers[channel] = deliverer

    def knows(self, channel: str) -> bool:
        """Whether replies can go to `channel`."""
        return channel in self._deliverers

    def channels(self) -> list[str]:
        """Return the channels replies can go to."""
        return sorted(self._deliverers)

    async def deliver(self, target: DeliveryTarget, text: str, *, label: str) -> None:
        """Deliver `text` to `target`.

        Raises:
            DeliveryError: the channel is unknown or its deliverer failed.
        """
        deliverer = self._deliverers.get(target.channel)
        if deliverer is None:
            known = ", ".join(self.channels()) or "none"
            raise DeliveryError(
                f"channel {target.channel!r} is not linked; replies can go to: {known}"
            )
        await deliverer.deliver(target, text, label=label)
