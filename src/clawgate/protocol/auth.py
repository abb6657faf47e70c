"""Shared-secret credential checks and failure throttling (spec §5.2, §5.4)."""

from __future__ import annotations

import hashlib
import hmac
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from .detail_codes import (
    AUTH_DEVICE_TOKEN_MISMATCH,
    AUTH_PASSWORD_MISMATCH,
    AUTH_PASSWORD_MISSING,
    AUTH_RATE_LIMITED,
    AUTH_TOKEN_MISMATCH,
    AUTH_TOKEN_MISSING,
)
from .errors import InvalidRequest
from .limits import Limits

__all__ = [
    "AuthFailure",
    "AuthMode",
    "AuthThrottle",
    "FailureKind",
    "SharedSecretAuth",
    "secrets_equal",
]


class AuthMode(StrEnum):
    """How clients prove they may connect."""

    NONE = "none"
    TOKEN = "token"
    PASSWORD = "password"


class FailureKind(StrEnum):
    """Failures are counted separately for shared secrets and device tokens (spec §5.4)."""

    SHARED_SECRET = "shared-secret"
    DEVICE_TOKEN = "device-token"


_MESSAGES: Final = {
    AUTH_TOKEN_MISSING: (
        "token_missing",
        "unauthorized: gateway token missing (provide gateway auth token)",
    ),
    AUTH_TOKEN_MISMATCH: (
        "token_mismatch",
        "unauthorized: gateway token mismatch (provide gateway auth token)",
    ),
    AUTH_PASSWORD_MISSING: (
        "password_missing",
        "unauthorized: gateway password missing (provide gateway auth password)",
    ),
    AUTH_PASSWORD_MISMATCH: (
        "password_mismatch",
        "unauthorized: gateway password mismatch (provide gateway auth password)",
    ),
    AUTH_DEVICE_TOKEN_MISMATCH: (
        "device_token_mismatch",
        "unauthorized: device token mismatch (rotate/reissue device token)",
    ),
    AUTH_RATE_LIMITED: (
        "rate_limited",
        "unauthorized: too many failed attempts (retry later)",
    ),
}


def secrets_equal(given: str, expected: str) -> bool:
    """Compare two secrets in constant time over fixed-length digests."""
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )


class AuthFailure(InvalidRequest):
    """A rejected credential, with the spec's `AUTH_*` details."""

    def __init__(
        self,
        code: str,
        *,
        can_retry_with_device_token: bool = False,
        retry_after_ms: int | None = None,
    ) -> None:
        reason, message = _MESSAGES[code]
        if code == AUTH_RATE_LIMITED:
            next_step = "wait_then_retry"
        elif code.endswith("_MISSING"):
            next_step = "update_auth_configuration"
        elif can_retry_with_device_token and code != AUTH_DEVICE_TOKEN_MISMATCH:
            next_step = "retry_with_device_token"
        else:
            next_step = "update_auth_credentials"
        super().__init__(
            message,
            details={
                "code": code,
                "authReason": reason,
                "canRetryWithDeviceToken": can_retry_with_device_token,
                "recommendedNextStep": next_step,
            },
            retryable=True if retry_after_ms is not None else None,
            retry_after_ms=retry_after_ms,
        )
        self.auth_code = code


@dataclass(frozen=True, slots=True)
class SharedSecretAuth:
    """The gateway's auth mode and its shared secret."""

    mode: AuthMode
    # Out of repr: settings objects holding this end up in logs and tracebacks.
    secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Refuse a secret-based mode without a secret (spec §3.5 reserved codes)."""
        if self.mode is not AuthMode.NONE and not self.secret:
            raise ValueError(f"auth mode {self.mode.value} needs a secret")

    def presented(self, token: str | None, password: str | None) -> bool:
        """Return whether a guess at this mode's shared secret was sent.

        Such a guess counts as a shared-secret failure even beside a device token, so a
        device token sent along cannot move password guesses into the other count.
        """
        if self.mode is AuthMode.TOKEN:
            return token is not None
        return self.mode is AuthMode.PASSWORD and password is not None

    def check(self, token: str | None, password: str | None) -> AuthFailure | None:
        """Return why the shared-secret credential fails, or None when it is accepted."""
        if self.mode is AuthMode.NONE:
            return None
        assert self.secret is not None
        if self.mode is AuthMode.TOKEN:
            if token is None:
                return AuthFailure(AUTH_TOKEN_MISSING)
            return None if secrets_equal(token, self.secret) else AuthFailure(AUTH_TOKEN_MISMATCH)
        if password is None:
            return AuthFailure(AUTH_PASSWORD_MISSING)
        if secrets_equal(password, self.secret):
            return None
        return AuthFailure(AUTH_PASSWORD_MISMATCH)


@dataclass(slots=True)
class _Window:
    failures: deque[int] = field(default_factory=deque)
    locked_until_ms: int = 0


class AuthThrottle:
    """Count failed credential checks per source IP and lock an IP out (spec §5.4)."""

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._windows: dict[tuple[str, FailureKind], _Window] = {}

    def lockout_remaining_ms(self, ip: str, now_ms: int) -> int:
        """Return how long `ip` (an address or a device id) stays locked out, 0 when it is not."""
        remaining = 0
        for kind in FailureKind:
            window = self._windows.get((ip, kind))
            if window is not None:
                remaining = max(remaining, window.locked_until_ms - now_ms)
        return max(remaining, 0)

    def record_failure(self, ip: str, kind: FailureKind, now_ms: int) -> None:
        """Count one failure; the tenth inside the window starts a lockout."""
        window = self._windows.setdefault((ip, kind), _Window())
        cutoff = now_ms - self._limits.auth_failure_window_ms
        while window.failures and window.failures[0] <= cutoff:
            window.failures.popleft()
        window.failures.append(now_ms)
        if len(window.failures) >= self._limits.auth_failures_allowed:
            window.locked_until_ms = now_ms + self._limits.auth_lockout_ms
            window.failures.clear()

    def forget(self, key: str) -> None:
        """Drop every count and lockout of one address or device."""
        for kind in FailureKind:
            self._windows.pop((key, kind), None)

    def prune(self, now_ms: int) -> None:
        """Forget windows with no recent failure and no active lockout."""
        cutoff = now_ms - self._limits.auth_failure_window_ms
        stale = [
            key
            for key, window in self._windows.items()
            if window.locked_until_ms <= now_ms
            and (not window.failures or window.failures[-1] <= cutoff)
        ]
        for key in stale:
            del self._windows[key]
