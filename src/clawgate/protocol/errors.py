"""Error codes and the one exception type handlers raise (spec §2.2).

Exception tree::

    RequestError            a request failed with a wire ErrorShape
    ├── InvalidRequest      INVALID_REQUEST: bad frame, params, method, role
    ├── Forbidden           FORBIDDEN (sent as INVALID_REQUEST on protocol 3)
    └── Unavailable         UNAVAILABLE: not ready, rate limited, internal error

Handlers raise these; one boundary (the connection) turns them into frames. Any other
exception is answered `UNAVAILABLE` "internal error" and never shows its text.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "AGENT_RESULT_NOT_FOUND",
    "AGENT_TIMEOUT",
    "APPROVAL_NOT_FOUND",
    "ERROR_CODES",
    "FORBIDDEN",
    "INVALID_REQUEST",
    "NOT_LINKED",
    "NOT_PAIRED",
    "UNAVAILABLE",
    "Forbidden",
    "InvalidRequest",
    "RequestError",
    "Unavailable",
    "internal_error",
]

INVALID_REQUEST: Final = "INVALID_REQUEST"
NOT_PAIRED: Final = "NOT_PAIRED"
NOT_LINKED: Final = "NOT_LINKED"
UNAVAILABLE: Final = "UNAVAILABLE"
AGENT_TIMEOUT: Final = "AGENT_TIMEOUT"
APPROVAL_NOT_FOUND: Final = "APPROVAL_NOT_FOUND"
FORBIDDEN: Final = "FORBIDDEN"
AGENT_RESULT_NOT_FOUND: Final = "AGENT_RESULT_NOT_FOUND"

ERROR_CODES: Final = (
    INVALID_REQUEST,
    NOT_PAIRED,
    NOT_LINKED,
    UNAVAILABLE,
    AGENT_TIMEOUT,
    APPROVAL_NOT_FOUND,
    FORBIDDEN,
    AGENT_RESULT_NOT_FOUND,
)

# Codes that protocol 3 does not know; they travel as INVALID_REQUEST there (spec §2.2).
_V4_ONLY: Final = frozenset({FORBIDDEN, AGENT_RESULT_NOT_FOUND})


class RequestError(Exception):
    """A request failed with a defined wire error."""

    code: str = UNAVAILABLE
    # A payload sent beside the error; only `agent` finals carry one (spec §2.1).
    payload: Any = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        retryable: bool | None = None,
        retry_after_ms: int | None = None,
        payload: Any = None,
    ) -> None:
        super().__init__(message)
        self.payload = payload
        if code is not None:
            self.code = code
        self.message = message
        self.details = details
        self.retryable = retryable
        self.retry_after_ms = retry_after_ms

    def to_shape(self, protocol: int = 4) -> dict[str, Any]:
        """Return the ErrorShape for a connection on `protocol`."""
        code = self.code
        if protocol < 4 and code in _V4_ONLY:
            code = INVALID_REQUEST
        shape: dict[str, Any] = {"code": code, "message": self.message}
        if self.details is not None:
            shape["details"] = self.details
        if self.retryable is not None:
            shape["retryable"] = self.retryable
        if self.retry_after_ms is not None:
            shape["retryAfterMs"] = self.retry_after_ms
        return shape


class InvalidRequest(RequestError):
    """The request cannot be served as sent."""

    code = INVALID_REQUEST


class Forbidden(RequestError):
    """The caller lacks a scope (protocol 4 code)."""

    code = FORBIDDEN


class Unavailable(RequestError):
    """The gateway cannot serve the request now."""

    code = UNAVAILABLE


def internal_error() -> Unavailable:
    """Return the error sent for any unexpected failure; it never carries exception text."""
    return Unavailable("internal error")
