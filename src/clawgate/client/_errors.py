"""Exceptions raised by the gateway client.

Exception tree::

    GatewayError
    ├── GatewayCallError            the server answered ok:false
    │   └── GatewayHandshakeError   ... to the connect request
    ├── GatewayConnectionError      transport failure: refused, closed, not connected,
    │                               TLS certificate fingerprint mismatch
    ├── GatewayTimeoutError         no answer in time (also a TimeoutError)
    ├── SequenceGapError            a broadcast event's seq skipped ahead
    └── IdentityError               the device identity file cannot be read, written or trusted

Invariants: a call pending when its connection closes fails with ``GatewayConnectionError``
at once, never hangs; no error message ever contains a token, password or private key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "GatewayCallError",
    "GatewayConnectionError",
    "GatewayError",
    "GatewayHandshakeError",
    "GatewayTimeoutError",
    "IdentityError",
    "SequenceGapError",
]


class GatewayError(Exception):
    """Base class of every error raised by the gateway client."""


class GatewayCallError(GatewayError):
    """The gateway answered a request with ``ok:false``.

    Attributes:
        code: Stable error code, e.g. ``INVALID_REQUEST``.
        message: Human-readable message from the server.
        details: The error's ``details`` member, or ``None``.
        retryable: Whether the server marked the error retryable.
        retry_after_ms: The server's suggested wait before retrying, or ``None``.
        payload: The response payload sent alongside the error (only ``agent`` finals do).
    """

    def __init__(
        self,
        code: str,
        message: str,
        details: Any = None,
        retryable: bool = False,
        retry_after_ms: int | None = None,
        *,
        payload: Any = None,
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.details = details
        self.retryable = retryable
        self.retry_after_ms = retry_after_ms
        self.payload = payload

    @property
    def detail_code(self) -> str | None:
        """Return ``details.code`` when the details are an object carrying one."""
        if isinstance(self.details, dict):
            code = self.details.get("code")
            if isinstance(code, str):
                return code
        return None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class GatewayHandshakeError(GatewayCallError):
    """The gateway refused the ``connect`` request.

    Attributes:
        close_code: The WebSocket close code that followed the refusal, if it arrived.
        close_reason: The close reason text, if it arrived.
        pairing_request_id: On ``NOT_PAIRED``, the pairing request this device made (the
            message then names it and the command that approves it).
    """

    def __init__(
        self,
        code: str,
        message: str,
        details: Any = None,
        retryable: bool = False,
        retry_after_ms: int | None = None,
        *,
        close_code: int | None = None,
        close_reason: str | None = None,
    ) -> None:
        request_id = details.get("requestId") if isinstance(details, dict) else None
        if code == "NOT_PAIRED" and isinstance(request_id, str):
            # Say what unblocks this device, on the gateway's host, in words it can paste.
            message = f"{message}: request {request_id}; {approve_hint(request_id)}"
        super().__init__(code, message, details, retryable, retry_after_ms)
        self.close_code = close_code
        self.close_reason = close_reason
        self.pairing_request_id = request_id if code == "NOT_PAIRED" else None

    @property
    def approve_command(self) -> str | None:
        """Return the command that approves this device's pairing request, if it made one."""
        if self.pairing_request_id is None:
            return None
        return f"clawgate devices approve {self.pairing_request_id}"


def approve_hint(request_id: str) -> str:
    """Return the sentence telling the operator how to approve a pairing request."""
    return f"approve it on the gateway host with `clawgate devices approve {request_id}`"


class GatewayConnectionError(GatewayError):
    """The connection failed, closed, or does not exist.

    Attributes:
        close_code: The WebSocket close code, when the socket was closed with one.
        close_reason: The close reason text, when one was given.
    """

    def __init__(
        self,
        message: str,
        *,
        close_code: int | None = None,
        close_reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.close_reason = close_reason


class GatewayTimeoutError(GatewayError, TimeoutError):
    """A request or the handshake got no answer within its timeout."""


class SequenceGapError(GatewayError):
    """A broadcast event's ``seq`` was not the one expected; events were missed.

    Attributes:
        expected: The ``seq`` the client expected.
        got: The ``seq`` that arrived.
    """

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"event seq gap: expected {expected}, got {got}")
        self.expected = expected
        self.got = got


class IdentityError(GatewayError):
    """A device identity or device-token file is unusable.

    Raised instead of silently creating a new identity: a different key is a different
    device to the gateway, which would lose its pairing.

    Attributes:
        path: The file concerned.
    """

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
