"""Reconnect timing and the rule for when not to reconnect (pure, no I/O)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

from ._errors import GatewayConnectionError, GatewayHandshakeError

__all__ = ["FATAL_HANDSHAKE_CODES", "Backoff", "is_fatal_handshake_error", "retry_floor"]

#: Handshake error codes that a retry cannot fix (bad credentials, protocol, role, pairing);
#: reconnecting after them would only hammer the gateway and trip its lockout.
FATAL_HANDSHAKE_CODES: Final = frozenset({"INVALID_REQUEST", "NOT_PAIRED"})

#: Close codes that, during a handshake, mean "this client's frames are wrong": protocol
#: mismatch, binary, invalid UTF-8, policy (auth, bad frame), too large.
_FATAL_CLOSE_CODES: Final = frozenset({1002, 1003, 1007, 1008, 1009})


class Backoff:
    """Exponential backoff with full jitter.

    The n-th delay (n from 0) is ``rand(0, min(maximum, initial * 2**n))``.
    """

    def __init__(
        self,
        initial: float = 0.25,
        maximum: float = 30.0,
        *,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        """Create a backoff.

        Args:
            initial: Ceiling of the first delay, in seconds; must be > 0.
            maximum: Largest ceiling, in seconds; must be >= ``initial``.
            rand: ``(low, high) -> float`` used for the jitter; ``random.uniform`` by default.

        Raises:
            ValueError: If ``initial`` or ``maximum`` is out of range.
        """
        if initial <= 0:
            raise ValueError("initial must be > 0")
        if maximum < initial:
            raise ValueError("maximum must be >= initial")
        self._initial = initial
        self._maximum = maximum
        self._rand = rand
        self._attempts = 0
        self._ceiling = initial

    @property
    def attempts(self) -> int:
        """Return how many delays were handed out since the last reset."""
        return self._attempts

    @property
    def ceiling(self) -> float:
        """Return the upper bound of the next delay."""
        return self._ceiling

    def next_delay(self) -> float:
        """Return the next delay in seconds and advance the schedule."""
        ceiling = self._ceiling
        self._attempts += 1
        # Doubling a capped value instead of computing initial * 2**n cannot overflow.
        self._ceiling = min(self._maximum, ceiling * 2)
        return self._rand(0.0, ceiling)

    def reset(self) -> None:
        """Start the schedule over, e.g. after a successful connection."""
        self._attempts = 0
        self._ceiling = self._initial


def is_fatal_handshake_error(exc: BaseException) -> bool:
    """Return True if a reconnect attempt that failed with ``exc`` must not be retried."""
    if isinstance(exc, GatewayHandshakeError):
        return exc.code in FATAL_HANDSHAKE_CODES or exc.close_code in _FATAL_CLOSE_CODES
    if isinstance(exc, GatewayConnectionError):
        return exc.close_code in _FATAL_CLOSE_CODES
    return False  # network errors, timeouts, 1012/1013 closes: try again


def retry_floor(exc: BaseException) -> float:
    """Return the least delay in seconds the server asked for before the next attempt."""
    if isinstance(exc, GatewayHandshakeError) and exc.retry_after_ms is not None:
        return max(0.0, exc.retry_after_ms / 1000)
    return 0.0
