"""Errors of the OpenAI-compatible HTTP API, without I/O: OpenAI's error JSON and its codes.

The shape follows OpenAI's documented API, because clients (the `openai` SDKs, Open WebUI,
editors) break on small differences: `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "CONTEXT_LENGTH_EXCEEDED",
    "INSUFFICIENT_PERMISSIONS",
    "INVALID_API_KEY",
    "INVALID_REQUEST_ERROR",
    "INVALID_TYPE",
    "INVALID_VALUE",
    "MISSING_REQUIRED_PARAMETER",
    "MODEL_NOT_FOUND",
    "RATE_LIMIT_ERROR",
    "RATE_LIMIT_EXCEEDED",
    "REQUEST_TOO_LARGE",
    "RUN_ABORTED",
    "RUN_TIMEOUT",
    "SERVER_ERROR",
    "UNSUPPORTED_VALUE",
    "OpenAIError",
    "error_body",
]

# Error `type`s.
INVALID_REQUEST_ERROR: Final = "invalid_request_error"
SERVER_ERROR: Final = "server_error"
RATE_LIMIT_ERROR: Final = "requests"
# Error `code`s.
INVALID_API_KEY: Final = "invalid_api_key"
MISSING_REQUIRED_PARAMETER: Final = "missing_required_parameter"
INVALID_VALUE: Final = "invalid_value"
INVALID_TYPE: Final = "invalid_type"
MODEL_NOT_FOUND: Final = "model_not_found"
RATE_LIMIT_EXCEEDED: Final = "rate_limit_exceeded"
REQUEST_TOO_LARGE: Final = "request_too_large"
UNSUPPORTED_VALUE: Final = "unsupported_value"
RUN_TIMEOUT: Final = "timeout"
RUN_ABORTED: Final = "aborted"
INSUFFICIENT_PERMISSIONS: Final = "insufficient_permissions"
CONTEXT_LENGTH_EXCEEDED: Final = "context_length_exceeded"


class OpenAIError(Exception):
    """A request failed; `body()` is OpenAI's error JSON and `status` its HTTP status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST_ERROR,
        param: str | None = None,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retry_after_s = retry_after_s

    def body(self) -> dict[str, Any]:
        """Return `{"error": {...}}`."""
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(
    message: str,
    *,
    type: str = INVALID_REQUEST_ERROR,
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """Return OpenAI's error object; `param` and `code` are null when they do not apply."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}
