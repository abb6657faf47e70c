"""The exceptions of the plugin SDK: the wire's `IpcError` under the SDK's public names.

Exception tree::

    IpcError                    clawgate.protocol.ipc: a wire error (the daemon raises it too)
    └── PluginError             a request failed with {code, message, details?, retryable}
        └── NotConnectedError   UNAVAILABLE: no registered connection (or it dropped mid-call)

Handlers raise ``PluginError`` to choose the code they answer with; any other exception is
answered ``INTERNAL`` without its text. ``Plugin.call`` raises ``PluginError`` with the
daemon's code, or ``TIMEOUT`` when the reply does not come in time.
"""

from __future__ import annotations

from typing import Any

from ..protocol.ipc.frames import UNAVAILABLE, IpcError

__all__ = ["NotConnectedError", "PluginError"]


class PluginError(IpcError):
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
        super().__init__(code, message, details=details, retryable=retryable)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    @classmethod
    def from_wire(cls, error: dict[str, Any]) -> PluginError:
        """Build the error from a response's ``error`` object."""
        return cls.from_error(error)


class NotConnectedError(PluginError):
    """No registered connection to the daemon, or it dropped while a call was pending."""

    def __init__(self, message: str = "not connected to the daemon") -> None:
        super().__init__(UNAVAILABLE, message, retryable=True)
