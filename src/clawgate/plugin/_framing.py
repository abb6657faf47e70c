"""NDJSON framing and frame classification for plugin IPC (spec §2.1, §2.2); pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from ._errors import FRAME_TOO_LARGE, INVALID_FRAME

__all__ = [
    "MAX_FRAME_BYTES",
    "EventFrame",
    "Frame",
    "FrameError",
    "NdjsonDecoder",
    "RequestFrame",
    "ResponseFrame",
    "UnknownFrame",
    "encode_frame",
    "error_frame",
    "event_frame",
    "ok_frame",
    "parse_frame",
    "request_frame",
]

#: Largest frame in bytes, LF excluded.
MAX_FRAME_BYTES: Final = 1 << 20
_MAX_ID_LEN: Final = 128


class FrameError(Exception):
    """A frame (or the byte stream) is unusable; the connection must send an error and close."""

    def __init__(self, code: str, message: str, frame_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.frame_id = frame_id


class NdjsonDecoder:
    """Split a byte stream into LF-terminated lines without buffering more than the limit."""

    def __init__(self, max_line: int = MAX_FRAME_BYTES) -> None:
        self._max = max_line
        self._buf = bytearray()
        self._failed = False

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return the complete, non-empty lines (LF and one trailing CR stripped).

        Raises:
            FrameError: ``FRAME_TOO_LARGE`` once a line exceeds the limit; the decoder is
                then unusable.
        """
        if self._failed:
            raise FrameError(FRAME_TOO_LARGE, "decoder already failed")
        self._buf += data
        lines: list[bytes] = []
        start = 0
        while True:
            nl = self._buf.find(b"\n", start)
            if nl < 0:
                break
            line = bytes(self._buf[start:nl])
            start = nl + 1
            if len(line) > self._max:
                self._fail()
            if line.endswith(b"\r"):
                line = line[:-1]
            if line:
                lines.append(line)
        del self._buf[:start]
        # The pending line is already over the limit: fail now rather than buffer on.
        if len(self._buf) > self._max:
            self._fail()
        return lines

    @property
    def buffered(self) -> int:
        """Return how many bytes of an incomplete line are held."""
        return len(self._buf)

    def _fail(self) -> None:
        self._failed = True
        self._buf.clear()
        raise FrameError(FRAME_TOO_LARGE, f"frame exceeds {self._max} bytes")


@dataclass(frozen=True, slots=True)
class RequestFrame:
    """A request from the peer."""

    id: str
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ResponseFrame:
    """A response to one of our requests (``id`` None: a connection-level error)."""

    id: str | None
    ok: bool
    payload: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class EventFrame:
    """An event from the peer."""

    event: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """A frame of a type this version does not know; to be logged and ignored."""

    type: Any


Frame = RequestFrame | ResponseFrame | EventFrame | UnknownFrame


def parse_frame(line: bytes) -> Frame:
    """Classify one line as a frame.

    Raises:
        FrameError: ``INVALID_FRAME`` for non-UTF-8, non-JSON, non-object or malformed frames.
    """
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise FrameError(INVALID_FRAME, "frame is not UTF-8 JSON") from exc
    if not isinstance(obj, dict):
        raise FrameError(INVALID_FRAME, "frame is not a JSON object")
    ftype = obj.get("type")
    if ftype == "req":
        fid, method = obj.get("id"), obj.get("method")
        good_id = isinstance(fid, str) and 1 <= len(fid) <= _MAX_ID_LEN
        if not good_id or not isinstance(fid, str) or not isinstance(method, str):
            raise FrameError(
                INVALID_FRAME,
                "request needs a string id and method",
                fid if isinstance(fid, str) else None,
            )
        params = obj.get("params")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise FrameError(INVALID_FRAME, "request params must be an object", fid)
        return RequestFrame(fid, method, params)
    if ftype == "res" or (ftype is None and "id" in obj and "ok" in obj):
        fid = obj.get("id")
        ok = obj.get("ok") is True
        payload = obj.get("payload")
        error = obj.get("error")
        return ResponseFrame(
            id=fid if isinstance(fid, str) else None,
            ok=ok,
            payload=payload if isinstance(payload, dict) else {},
            error=error if isinstance(error, dict) else (None if ok else {}),
        )
    if ftype == "event":
        event = obj.get("event")
        if not isinstance(event, str):
            return UnknownFrame(ftype)
        payload = obj.get("payload")
        return EventFrame(event, payload if isinstance(payload, dict) else {})
    return UnknownFrame(ftype)


def encode_frame(frame: dict[str, Any]) -> bytes:
    """Serialise a frame as one NDJSON line (LF included)."""
    return orjson.dumps(frame) + b"\n"


def request_frame(frame_id: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """Build a request frame."""
    return {"type": "req", "id": frame_id, "method": method, "params": params}


def ok_frame(frame_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Build a success response frame."""
    return {"type": "res", "id": frame_id, "ok": True, "payload": payload}


def error_frame(
    frame_id: str | None,
    code: str,
    message: str,
    *,
    retryable: bool | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build a failure response frame (``frame_id`` None: a connection-level error)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    if retryable is not None:
        error["retryable"] = retryable
    return {"type": "res", "id": frame_id, "ok": False, "error": error}


def event_frame(event: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Build an event frame."""
    return {"type": "event", "event": event, "payload": payload}
