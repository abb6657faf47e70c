"""Request, response and event frames: parsing in, bytes out (spec §2).

Outgoing frames are encoded with orjson. A broadcast event is encoded once as a
`PreparedEvent`; each connection appends only its own `seq`, so fan-out to many
sockets costs one serialisation plus a byte concatenation per socket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .errors import InvalidRequest, RequestError
from .nesting import is_depth_error, nesting_error, nesting_exceeds
from .validation import describe_validation_error

__all__ = [
    "INVALID_ID",
    "EventFrame",
    "FrameError",
    "PreparedEvent",
    "RequestFrame",
    "ResponseFrame",
    "encode_error",
    "encode_event",
    "encode_response",
    "parse_request",
]

# Response id used when a bad frame carries no usable id (spec §2.3).
INVALID_ID: Final = "invalid"

FrameId = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RequestFrame(_Closed):
    """A client request."""

    type: Literal["req"]
    id: FrameId
    method: Annotated[str, StringConstraints(min_length=1)]
    params: Any = None
    traceparent: Annotated[str, StringConstraints(max_length=128)] | None = None
    expectedProfileId: str | None = None


class ErrorShapeModel(_Closed):
    """The error member of a failed response."""

    code: str
    message: str
    details: Any = None
    retryable: bool | None = None
    retryAfterMs: Annotated[int, Field(ge=0)] | None = None


class ResponseFrame(_Closed):
    """A server response (schema only; responses are encoded by `encode_response`)."""

    type: Literal["res"]
    id: FrameId
    ok: bool
    payload: Any = None
    error: ErrorShapeModel | None = None


class StateVersion(_Closed):
    """The presence and health counters (spec §8.3)."""

    presence: int
    health: int


class EventFrame(_Closed):
    """A server event (schema only; events are encoded by `encode_event`)."""

    type: Literal["event"]
    event: str
    payload: Any = None
    seq: Annotated[int, Field(ge=1)] | None = None
    stateVersion: StateVersion | None = None


class FrameError(InvalidRequest):
    """A frame that is not a valid request; `reply_id` is the id to answer with."""

    def __init__(self, message: str, reply_id: str = INVALID_ID) -> None:
        super().__init__(message)
        self.reply_id = reply_id


def parse_request(text: str | bytes) -> RequestFrame:
    """Parse one inbound text frame as a request.

    Raises:
        FrameError: the text is not JSON, not an object, or not of Request shape.
    """
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if is_depth_error(exc):
            raise FrameError(f"invalid request frame: {nesting_error()}") from None
        raise FrameError("invalid request frame: not a JSON object") from None
    if not isinstance(data, dict):
        raise FrameError("invalid request frame: not a JSON object")
    if nesting_exceeds(data):
        frame_id = data.get("id")
        reply_id = frame_id if isinstance(frame_id, str) and 0 < len(frame_id) <= 256 else None
        raise FrameError(f"invalid request frame: {nesting_error()}", reply_id or INVALID_ID)
    try:
        return RequestFrame.model_validate(data)
    except ValidationError as exc:
        frame_id = data.get("id")
        reply_id = frame_id if isinstance(frame_id, str) and 0 < len(frame_id) <= 256 else None
        raise FrameError(
            f"invalid request frame: {describe_validation_error(exc)}", reply_id or INVALID_ID
        ) from None


def encode_response(frame_id: str, payload: Any) -> bytes:
    """Encode a successful response."""
    return orjson.dumps({"type": "res", "id": frame_id, "ok": True, "payload": payload})


def encode_error(
    frame_id: str, error: RequestError, protocol: int = 4, payload: Any = None
) -> bytes:
    """Encode a failed response, mapping codes for `protocol`."""
    frame: dict[str, Any] = {"type": "res", "id": frame_id, "ok": False}
    if payload is not None:
        frame["payload"] = payload
    frame["error"] = error.to_shape(protocol)
    return orjson.dumps(frame)


def encode_event(event: str, payload: Any = None) -> bytes:
    """Encode a targeted event, which carries no `seq`."""
    frame: dict[str, Any] = {"type": "event", "event": event}
    if payload is not None:
        frame["payload"] = payload
    return orjson.dumps(frame)


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """A broadcast event serialised once, waiting for each connection's `seq`."""

    event: str
    head: bytes

    @classmethod
    def build(
        cls, event: str, payload: Any = None, state_version: dict[str, int] | None = None
    ) -> PreparedEvent:
        """Serialise `event` without its closing brace so a `seq` can be appended."""
        frame: dict[str, Any] = {"type": "event", "event": event}
        if payload is not None:
            frame["payload"] = payload
        if state_version is not None:
            frame["stateVersion"] = state_version
        return cls(event, orjson.dumps(frame)[:-1])

    def with_seq(self, seq: int) -> bytes:
        """Return the complete frame for a connection at `seq`."""
        return b'%s,"seq":%d}' % (self.head, seq)
