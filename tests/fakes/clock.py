"""A wall clock a test sets and advances, so schedules are tested without waiting."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["FakeClock"]


class FakeClock:
    """Unix milliseconds that change only when the test says so."""

    def __init__(self, start: datetime) -> None:
        self.now_ms = int(start.timestamp() * 1000)

    def __call__(self) -> int:
        return self.now_ms

    def set(self, moment: datetime) -> None:
        """Move to `moment` (an aware datetime), forwards or backwards."""
        self.now_ms = int(moment.astimezone(UTC).timestamp() * 1000)

    def advance(self, ms: int) -> None:
        """Move forwards by `ms` milliseconds."""
        self.now_ms += ms
