"""A sliding-window counter for per-key rate limits (e.g. config writes, spec §10.9)."""

from __future__ import annotations

from collections import deque

__all__ = ["SlidingWindow"]


class SlidingWindow:
    """Allow at most `limit` events per key within any `window_ms`."""

    def __init__(self, limit: int, window_ms: int) -> None:
        self._limit = limit
        self._window_ms = window_ms
        self._events: dict[str, deque[int]] = {}

    def retry_after_ms(self, key: str, now_ms: int) -> int:
        """Return how long `key` must wait before its next event; 0 means go ahead."""
        events = self._events.get(key)
        if events is None:
            return 0
        while events and events[0] <= now_ms - self._window_ms:
            events.popleft()
        if not events:
            del self._events[key]
            return 0
        if len(events) < self._limit:
            return 0
        return events[0] + self._window_ms - now_ms

    def record(self, key: str, now_ms: int) -> None:
        """Count one event for `key`."""
        self._events.setdefault(key, deque()).append(now_ms)
