"""How the supervisor treats one account: its state, restart backoff and stall check (pure).

States: `starting` (run() begun, not yet connected), `connected`, `backoff` (waiting to
restart after a crash or stall), `stopped` (disabled, logged out or gateway stopping) and
`failed` (credentials refused: no retry until the account is logged in again, so a bad
token never becomes a retry storm). Backoff starts at 2 s and grows by 1.5x to 2 min, with
20 % jitter; a connection that stays up resets it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["AccountState", "Backoff", "BackoffPolicy", "stalled"]


class AccountState(StrEnum):
    """Where a channel account is in its life (what `channels.status` shows)."""

    STARTING = "starting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Restart delays: `initial_s` x `factor`^n up to `max_s`, each +-`jitter`."""

    initial_s: float = 2.0
    factor: float = 1.5
    max_s: float = 120.0
    jitter: float = 0.2


class Backoff:
    """The delay before each restart of one account."""

    def __init__(self, policy: BackoffPolicy, rand: Callable[[], float] = random.random) -> None:
        self._policy = policy
        self._rand = rand
        self.attempt = 0

    def next_delay(self) -> float:
        """Return the delay before the next restart and count the attempt."""
        policy = self._policy
        base = min(policy.initial_s * policy.factor**self.attempt, policy.max_s)
        self.attempt += 1
        return max(base * (1 + policy.jitter * (2 * self._rand() - 1)), 0.0)

    def reset(self) -> None:
        """Start again from the initial delay (the account connected)."""
        self.attempt = 0


def stalled(last_progress_s: float, now_s: float, stall_after_s: float) -> bool:
    """Return whether an account showed no progress for longer than `stall_after_s`."""
    return now_s - last_progress_s > stall_after_s
