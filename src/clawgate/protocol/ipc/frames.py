"""IPC frames, error codes and the one error type, without I/O (spec §2.1, §2.2, §2.11).

Exception tree::

    IpcError                    a request failed with a wire error
    │                           `{code, message, details, retryable}`
    ├── FrameError              the peer sent an unusable frame: answer it, then close (§2.1)
    └── PluginError             (clawgate.plugin) the plugin SDK's public name for it
        └── NotConnectedError   (clawgate.plugin) UNAVAILABLE: no registered connection

Both ends parse with `parse_frame`, so a frame one end rejects the other rejects too, with the
same code and reply id. Handlers raise `IpcError`; the connection turns it into a frame. Any
other exception is answered `INTERNAL` and never shows its text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Self

import orjson

from ..nesting import is_depth_error, nesting_error, nesting_exceeds
from .framing import MAX_FRAME_BYTES, encode_frame

__all__ = [
    "ALREADY_REGISTERED",
    "DEFAULT_RETRYABLE",
    "DEPENDENCY_CYCLE",
    "DEPENDENCY_MISSING",
    "DEPENDENCY_NOT_READY",
    "EXPIRED",
    "FRAME_TOO_LARGE",
    "INTERNAL",
    "INVALID_CONFIG",
    "INVALID_FRAME",
    "INVALID_MANIFEST",
    "INVALID_PARAMS",
    "METHOD_NOT_FOUND",
    "NOT_FOUND",
    "NOT_REGISTERED",
    "PLUGIN_DISCONNECTED",
    "PLUGIN_OFFLINE",
    "QUEUE_FULL",
    "SECRETS_UNAVAILABLE",
    "TIMEOUT",
    "UNAVAILABLE",
    "UNHEALTHY",
    "UNSUPPORTED_PROTOCOL",
    "Event",
    "Frame",
    "FrameError",
    "IpcError",
    "Request",
    "Response",
    "UnknownFrame",
    "encode_error",
    "encode_event",
    "encode_request",
    "encode_response",
    "parse_frame",
]

NOT_REGISTERED: Final = "NOT_REGISTERED"
ALREADY_REGISTERED: Final = "ALREADY_REGISTERED"
UNSUPPORTED_PROTOCOL: Final = "UNSUPPORTED_PROTOCOL"
INVALID_FRAME: Final = "INVALID_FRAME"
FRAME_TOO_LARGE: Final = "FRAME_TOO_LARGE"
METHOD_NOT_FOUND: Final = "METHOD_NOT_FOUND"
INVALID_PARAMS: Final = "INVALID_PARAMS"
NOT_FOUND: Final = "NOT_FOUND"
TIMEOUT: Final = "TIMEOUT"
PLUGIN_DISCONNECTED: Final = "PLUGIN_DISCONNECTED"
PLUGIN_OFFLINE: Final = "PLUGIN_OFFLINE"
UNAVAILABLE: Final = "UNAVAILABLE"
QUEUE_FULL: Final = "QUEUE_FULL"
EXPIRED: Final = "EXPIRED"
SECRETS_UNAVAILABLE: Final = "SECRETS_UNAVAILABLE"
INVALID_MANIFEST: Final = "INVALID_MANIFEST"
INVALID_CONFIG: Final = "INVALID_CONFIG"
DEPENDENCY_NOT_READY: Final = "DEPENDENCY_NOT_READY"
DEPENDENCY_MISSING: Final = "DEPENDENCY_MISSING"
DEPENDENCY_CYCLE: Final = "DEPENDENCY_CYCLE"
UNHEALTHY: Final = "UNHEALTHY"
INTERNAL: Final = "INTERNAL"

DEFAULT_RETRYABLE: Final[dict[str, bool]] = {
    NOT_REGISTERED: False,
    ALREADY_REGISTERED: False,
    UNSUPPORTED_PROTOCOL: False,
    INVALID_FRAME: False,
    FRAME_TOO_LARGE: False,
    METHOD_NOT_FOUND: False,
    INVALID_PARAMS: False,
    NOT_FOUND: False,
    TIMEOUT: True,
    PLUGIN_DISCONNECTED: True,
    PLUGIN_OFFLINE: True,
    UNAVAILABLE: True,
    QUEUE_FULL: True,
    EXPIRED: False,
    SECRETS_UNAVAILABLE: True,
    INVALID_MANIFEST: False,
    INVALID_CONFIG: False,
    DEPENDENCY_NOT_READY: True,
    DEPENDENCY_MISSING: False,
    DEPENDENCY_CYCLE: False,
    UNHEALTHY: True,
    INTERNAL: False,
}

_MAX_ID_LENGTH: Final = 128


class IpcError(Exception):
    """A request failed with a defined wire error."""

    def __init__(
        self,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.retryable = DEFAULT_RETRYABLE.get(code, False) if retryable is None else retryable

    def to_error(self) -> dict[str, Any]:
        """Return the wire `error` object."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        error["retryable"] = self.retryable
        return error

    @classmethod
    def from_error(cls, error: dict[str, Any]) -> Self:
        """Build an error from a peer's wire `error` object, tolerating odd member types.

        A `code` that is not a non-empty string reads as `INTERNAL`, a non-string `message`
        as empty, non-object `details` as none and a non-boolean `retryable` as the code's
        default (§2.11).
        """
        code = error.get("code")
        message = error.get("message")
        details = error.get("details")
        retryable = error.get("retryable")
        return cls(
            code if isinstance(code, str) and code else INTERNAL,
            message if isinstance(message, str) else "",
            details=details if isinstance(details, dict) else None,
            retryable=retryable if isinstance(retryable, bool) else None,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class FrameError(IpcError):
    """An unusable inbound frame; answer with `reply_id` (or null), then close."""

    def __init__(self, code: str, message: str, reply_id: str | None = None) -> None:
        super().__init__(code, message)
        self.reply_id = reply_id


@dataclass(frozen=True, slots=True)
class Request:
    """A request frame."""

    id: str
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Response:
    """A response: `error` set exactly when `ok` is false; null `id`: a connection-level error."""

    id: str | None
    ok: bool
    payload: dict[str, Any]
    error: IpcError | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """An event frame."""

    event: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """A JSON object of a `type` this version does not define; log it and ignore it (§2.1)."""

    type: Any


Frame = Request | Response | Event | UnknownFrame


def _valid_id(value: object) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= _MAX_ID_LENGTH


def parse_frame(line: bytes) -> Frame:
    """Parse one line (LF and trailing CR already stripped) into a frame.

    Raises:
        FrameError: `INVALID_FRAME` for bad UTF-8, bad JSON, a non-object, or a malformed
            request, response or event; `reply_id` is the request's id when it is usable.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(INVALID_FRAME, "frame is not valid UTF-8") from None
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if is_depth_error(exc):
            raise FrameError(INVALID_FRAME, f"frame is {nesting_error()}") from None
        raise FrameError(INVALID_FRAME, "frame is not valid JSON") from None
    if not isinstance(obj, dict):
        raise FrameError(INVALID_FRAME, "frame is not a JSON object")
    if nesting_exceeds(obj):
        raise FrameError(INVALID_FRAME, f"frame is {nesting_error()}")
    kind = obj.get("type")
    if kind is None and "id" in obj and "ok" in obj:
        kind = "res"
    if kind == "req":
        return _parse_request(obj)
    if kind == "res":
        return _parse_response(obj)
    if kind == "event":
        return _parse_event(obj)
    return UnknownFrame(kind)


def _parse_request(obj: dict[str, Any]) -> Request:
    raw_id = obj.get("id")
    # An unusable id is never echoed: the peer would have to reject the error frame too.
    reply_id = raw_id if _valid_id(raw_id) else None
    if reply_id is None:
        raise FrameError(INVALID_FRAME, "request id must be a string of 1 to 128 characters")
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise FrameError(INVALID_FRAME, "request method must be a non-empty string", reply_id)
    params = obj.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise FrameError(INVALID_FRAME, "request params must be an object", reply_id)
    return Request(reply_id, method, params)


def _parse_response(obj: dict[str, Any]) -> Response:
    raw_id = obj.get("id")
    if raw_id is not None and not _valid_id(raw_id):
        raise FrameError(INVALID_FRAME, "response id must be a string or null")
    ok = obj.get("ok")
    if not isinstance(ok, bool):
        raise FrameError(INVALID_FRAME, "response ok must be a boolean")
    if ok:
        payload = obj.get("payload")
        if payload is None:
            payload = {}
        elif not isinstance(payload, dict):
            raise FrameError(INVALID_FRAME, "response payload must be an object")
        return Response(raw_id, True, payload)
    error = obj.get("error")
    if not isinstance(error, dict):
        raise FrameError(INVALID_FRAME, "failed response must carry an error object")
    return Response(raw_id, False, {}, IpcError.from_error(error))


def _parse_event(obj: dict[str, Any]) -> Event:
    name = obj.get("event")
    if not isinstance(name, str) or not name:
        raise FrameError(INVALID_FRAME, "event name must be a non-empty string")
    payload = obj.get("payload")
    if payload is None:
        payload = {}
    elif not isinstance(payload, dict):
        raise FrameError(INVALID_FRAME, "event payload must be an object")
    return Event(name, payload)


def _oversize(data: bytes) -> int | None:
    """Return the frame's size when it is over the limit (LF excluded), else None."""
    size = len(data) - 1
    return size if size > MAX_FRAME_BYTES else None


def encode_request(request_id: str, method: str, params: dict[str, Any]) -> bytes:
    """Encode a request frame.

    Raises:
        IpcError: `INVALID_PARAMS`, not retryable, when the frame would exceed 1 MiB: the
            peer would close on it (§2.1) and a retry would do the same forever.
    """
    data = encode_frame({"type": "req", "id": request_id, "method": method, "params": params})
    size = _oversize(data)
    if size is not None:
        raise IpcError(
            INVALID_PARAMS,
            f"{method} params encode to {size} bytes, over the 1 MiB frame limit",
            retryable=False,
        )
    return data


def encode_response(request_id: str, payload: dict[str, Any]) -> bytes:
    """Encode a success response frame.

    Raises:
        IpcError: `INTERNAL` when the frame would exceed 1 MiB; answer with it instead, or
            the peer closes the connection (§2.1).
    """
    data = encode_frame({"type": "res", "id": request_id, "ok": True, "payload": payload})
    size = _oversize(data)
    if size is not None:
        raise IpcError(
            INTERNAL, f"the response encodes to {size} bytes, over the 1 MiB frame limit"
        )
    return data


def encode_error(request_id: str | None, error: IpcError) -> bytes:
    """Encode a failure response; a null id makes it a connection-level error frame."""
    return encode_frame({"type": "res", "id": request_id, "ok": False, "error": error.to_error()})


def encode_event(name: str, payload: dict[str, Any]) -> bytes:
    """Encode an event frame."""
    return encode_frame({"type": "event", "event": name, "payload": payload})
