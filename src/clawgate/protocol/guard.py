"""Per-connection counters that close abusive sockets (spec §2.3, §7)."""

from __future__ import annotations

from .limits import Limits

__all__ = ["ConnectionGuard"]


class ConnectionGuard:
    """Count invalid frames and authorization refusals in a row on one socket."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self.invalid_in_a_row = 0
        self.refusals_in_a_row = 0

    def valid_request(self) -> None:
        """Reset the invalid-frame count after a well-formed request."""
        self.invalid_in_a_row = 0

    def authorized(self) -> None:
        """Reset the refusal count after an authorized call."""
        self.refusals_in_a_row = 0

    def invalid_frame(self) -> bool:
        """Count one invalid frame; return True when the socket must close."""
        self.invalid_in_a_row += 1
        return self.invalid_in_a_row >= self._limits.invalid_frames_in_a_row

    def refusal(self) -> bool:
        """Count one role or scope refusal; return True when the socket must close."""
        self.refusals_in_a_row += 1
        return self.refusals_in_a_row >= self._limits.refusals_in_a_row
