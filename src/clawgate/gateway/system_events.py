"""System events waiting for the next agent turn (spec §10.1 `system-event`)."""

from __future__ import annotations

from collections import deque
from typing import Any, Final

__all__ = ["SystemEventQueue"]

# Enough for a long idle stretch; the oldest fall off first.
MAX_QUEUED: Final = 100


class SystemEventQueue:
    """A bounded FIFO of `{text, ts}` entries for the main session."""

    def __init__(self, maxlen: int = MAX_QUEUED) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=maxlen)

    def push(self, text: str, ts: int) -> None:
        """Queue one system event."""
        self._events.append({"text": text, "ts": ts})

    def peek(self) -> list[dict[str, Any]]:
        """Return the queued events, oldest first, without consuming them."""
        return list(self._events)

    def drain(self) -> list[dict[str, Any]]:
        """Return and remove every queued event."""
        events = list(self._events)
        self._events.clear()
        return events
