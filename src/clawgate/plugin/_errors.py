"""Plugin IPC error codes (spec §2.11) and the exceptions of the plugin SDK.

Exception tree::

    PluginError             a request failed with {code, message, details?, retryable}
    └── NotConnectedError   UNAVAILABLE: no registered connection (or it dropped mid-call)

Handlers raise ``PluginError`` to choose the code they answer with; any other exception is
answered ``INTERNAL`` without its text. ``Plugin.call`` raises ``PluginError`` with the
daemon's code, or ``TIMEOUT`` when the reply does not come in time.
"""

from __future__ import annotations

from typing import Any

# The codes and their retry defaults are the wire's (spec §2.11), shared with the daemon.
from ..protocol.ipc.frames import (
    ALREADY_REGISTERED,
    DEFAULT_RETRYABLE,
    FRAME_TOO_LARGE,
    INTERNAL,
    INVALID_FRAME,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    NOT_FOUND,
    NOT_REGISTERED,
    TIMEOUT,
    UNAVAILABLE,
    UNSUPPORTED_PROTOCOL,
)

__all__ = [
    "ALREADY_REGISTERED",
    "DEFAULT_RETRYABLE",
    "FRAME_TOO_LARGE",
    "INTERNAL",
    "INVALID_FRAME",
    "INVALID_PARAMS",
    "METHOD_NOT_FOUND",
    "NOT_FOUND",
    "NOT_REGISTERED",
    "TIMEOUT",
    "UNAVAILABLE",
    "UNSUPPORTED_PROTOCOL",
    "NotConnectedError",
    "PluginError",
]


class PluginError(Exception):
    """A request failed with a wire error; raise it from a handler to pick the code."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Create the error.

        Args:
            code: UPPER_SNAKE error code (§2.11, or the plugin's own for ``command.execute``).
            message: Human-readable text; must not contain secret values.
            retryable: Whether a retry may succeed; defaults per code (§2.11).
            details: Optional structured details.
        """
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = DEFAULT_RETRYABLE.get(code, False) if retryable is None else retryable
        self.details = details

    @classmethod
    def from_wire(cls, error: dict[str, Any]) -> PluginError:
        """Build the error from a response's ``error`` object."""
        code = error.get("code")
        message = error.get("message")
        retryable = error.get("retryable")
        details = error.get("details")
        return cls(
            code if isinstance(code, str) else INTERNAL,
            message if isinstance(message, str) else "",
            retryable=retryable if isinstance(retryable, bool) else None,
            details=details if isinstance(details, dict) else None,
        )


class NotConnectedError(PluginError):
    """No registered connection to the daemon, or it dropped while a call was pending."""

    def __init__(self, message: str = "not connected to the daemon") -> None:
        super().__init__(UNAVAILABLE, message, retryable=True)
