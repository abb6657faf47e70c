"""When to announce a state that changes in bursts: rarely, and always the latest state.

The presence list (spec §8.8) is announced whole, so a burst of n joins announced one by
one writes O(n²) bytes to each of n clients. `CoalescingMachine` turns a burst into few
announcements, each carrying the state and version as they are when it is sent.

Rules:
- A change when the last announcement is at least one interval old is announced at once:
  a lone join is seen without delay.
- A change within the interval waits for the interval's end; every change meanwhile
  rides on that one announcement.
- The interval is at least `min_interval_ms`. It is longer after a large announcement:
  the bytes it fanned out (frame size x recipients) divided by `fanout_bytes_per_s`, so
  whole-list announcements to many clients use a bounded share of the gateway's time and
  a storm of n joins costs O(n) and not O(n³).

Pure: the caller passes the time in (any monotonic millisecond clock), announces when
told to, and reports what it sent.
"""

from __future__ import annotations

__all__ = ["CoalescingMachine"]


class CoalescingMachine:
    """Decide when pending changes are announced: at most once per interval."""

    def __init__(self, min_interval_ms: int, fanout_bytes_per_s: int) -> None:
        """Announce at most once per `min_interval_ms`, longer for large fan-outs.

        Raises:
            ValueError: an interval below 1 ms or a non-positive byte rate.
        """
        if min_interval_ms < 1:
            raise ValueError("the interval must be at least 1 ms")
        if fanout_bytes_per_s < 1:
            raise ValueError("the fan-out byte rate must be positive")
        self._min_interval_ms = min_interval_ms
        self._bytes_per_s = fanout_bytes_per_s
        self._pending = False
        self._next_allowed_ms: int | None = None  # None: nothing announced yet

    @property
    def pending(self) -> bool:
        """Whether a change waits to be announced."""
        return self._pending

    @property
    def due_at_ms(self) -> int | None:
        """When the pending change should be announced, or None when none is pending."""
        if not self._pending:
            return None
        return self._next_allowed_ms if self._next_allowed_ms is not None else 0

    def changed(self, now_ms: int) -> bool:
        """Record a change; return whether to announce it now (else wait for `due_at_ms`)."""
        self._pending = True
        return self.due(now_ms)

    def due(self, now_ms: int) -> bool:
        """Return whether a pending change should be announced at `now_ms`."""
        due_at = self.due_at_ms
        return due_at is not None and now_ms >= due_at

    def announced(self, now_ms: int, fanout_bytes: int) -> None:
        """Record an announcement of the latest state that wrote `fanout_bytes` in all."""
        self._pending = False
        spread_ms = fanout_bytes * 1000 // self._bytes_per_s
        self._next_allowed_ms = now_ms + max(self._min_interval_ms, spread_ms)
