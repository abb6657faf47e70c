"""Client side of the wire: frame types, encoding, decoding and seq tracking (pure, no I/O).

Also the two handshake steps a device identity adds (spec §4, §5.6): signing the ``device``
block over the params exactly as sent, and reading the device token ``hello-ok`` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ..protocol.device_auth import (
    DeviceIdentity,
    SignedFields,
    build_payload_v3,
    select_signed_token,
)
from ._errors import GatewayCallError, GatewayHandshakeError
from ._identity import StoredToken

__all__ = [
    "AUTH_DEVICE_TOKEN_MISMATCH",
    "CHALLENGE_EVENT",
    "Challenge",
    "ErrorInfo",
    "Event",
    "FrameError",
    "Response",
    "SeqTracker",
    "build_connect_params",
    "encode_request",
    "issued_device_token",
    "parse_challenge",
    "parse_frame",
    "sign_device",
]

CHALLENGE_EVENT: Final = "connect.challenge"
#: ``details.code`` of a refused ``connect`` whose ``auth.deviceToken`` was wrong (spec §5.2).
AUTH_DEVICE_TOKEN_MISMATCH: Final = "AUTH_DEVICE_TOKEN_MISMATCH"


class FrameError(ValueError):
    """A frame from the server is not valid JSON or not a response/event object."""


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """The ``error`` member of an ``ok:false`` response."""

    code: str
    message: str
    details: Any = None
    retryable: bool = False
    retry_after_ms: int | None = None

    def to_exception(self, payload: Any = None) -> GatewayCallError:
        """Return the ``GatewayCallError`` describing this error."""
        return GatewayCallError(
            self.code,
            self.message,
            self.details,
            self.retryable,
            self.retry_after_ms,
            payload=payload,
        )

    def to_handshake_exception(
        self, close_code: int | None = None, close_reason: str | None = None
    ) -> GatewayHandshakeError:
        """Return the ``GatewayHandshakeError`` describing this refused ``connect``."""
        return GatewayHandshakeError(
            self.code,
            self.message,
            self.details,
            self.retryable,
            self.retry_after_ms,
            close_code=close_code,
            close_reason=close_reason,
        )


@dataclass(frozen=True, slots=True)
class Response:
    """A response frame: ``ok`` with a ``payload``, or not ok with an ``error``."""

    id: str
    ok: bool
    payload: Any = None
    error: ErrorInfo | None = None

    def result(self) -> Any:
        """Return the payload of an ok response.

        Returns:
            The response payload.

        Raises:
            GatewayCallError: If the response is ``ok:false``.
        """
        if self.ok:
            return self.payload
        error = self.error or ErrorInfo("UNAVAILABLE", "error response without error")
        raise error.to_exception(self.payload)


@dataclass(frozen=True, slots=True)
class Event:
    """An event frame; ``seq`` is set on broadcast events only."""

    event: str
    payload: Any = None
    seq: int | None = None
    state_version: dict[str, Any] | None = None


def encode_request(request_id: str, method: str, params: Any = None) -> bytes:
    """Return the JSON bytes of a request frame; ``params`` is omitted when None."""
    frame: dict[str, Any] = {"type": "req", "id": request_id, "method": method}
    if params is not None:
        frame["params"] = params
    return orjson.dumps(frame)


def _parse_error(raw: Any) -> ErrorInfo:
    """Return the ErrorInfo of a response's ``error`` member."""
    if not isinstance(raw, dict):
        raise FrameError("response error is not an object")
    code = raw.get("code")
    message = raw.get("message")
    if not isinstance(code, str) or not isinstance(message, str):
        raise FrameError("response error lacks code or message")
    retry_after = raw.get("retryAfterMs")
    return ErrorInfo(
        code=code,
        message=message,
        details=raw.get("details"),
        retryable=raw.get("retryable") is True,
        retry_after_ms=retry_after if isinstance(retry_after, int) else None,
    )


def parse_frame(data: str | bytes) -> Event | Response:
    """Decode one server frame.

    Args:
        data: The text of one WebSocket message.

    Returns:
        The decoded ``Event`` or ``Response``.

    Raises:
        FrameError: If the text is not JSON or not a valid response or event frame.
    """
    try:
        frame = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"frame is not JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise FrameError("frame is not a JSON object")
    kind = frame.get("type")
    if kind == "res":
        frame_id = frame.get("id")
        ok = frame.get("ok")
        if not isinstance(frame_id, str) or not isinstance(ok, bool):
            raise FrameError("response lacks a string id or a boolean ok")
        error = None if ok else _parse_error(frame.get("error"))
        return Response(id=frame_id, ok=ok, payload=frame.get("payload"), error=error)
    if kind == "event":
        name = frame.get("event")
        if not isinstance(name, str):
            raise FrameError("event lacks a string name")
        seq = frame.get("seq")
        if seq is not None and (not isinstance(seq, int) or isinstance(seq, bool)):
            raise FrameError("event seq is not an integer")
        state_version = frame.get("stateVersion")
        return Event(
            event=name,
            payload=frame.get("payload"),
            seq=seq,
            state_version=state_version if isinstance(state_version, dict) else None,
        )
    raise FrameError(f"unknown frame type {kind!r}")


def build_connect_params(
    *,
    min_protocol: int,
    max_protocol: int,
    client_id: str,
    client_version: str,
    platform: str,
    client_mode: str,
    role: str,
    scopes: Sequence[str],
    caps: Sequence[str] = (),
    display_name: str | None = None,
    instance_id: str | None = None,
    device_family: str | None = None,
    token: str | None = None,
    password: str | None = None,
    device_token: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return ``connect`` params; absent optional members are omitted, never sent as null.

    ``extra`` is merged at the top level last, so it can add members (``device``, ``locale``)
    or replace built ones; its ``None`` values are dropped.
    """
    client: dict[str, Any] = {
        "id": client_id,
        "version": client_version,
        "platform": platform,
        "mode": client_mode,
    }
    if display_name is not None:
        client["displayName"] = display_name
    if instance_id is not None:
        client["instanceId"] = instance_id
    if device_family is not None:
        client["deviceFamily"] = device_family
    params: dict[str, Any] = {
        "minProtocol": min_protocol,
        "maxProtocol": max_protocol,
        "client": client,
        "role": role,
        "scopes": list(scopes),
    }
    if caps:
        params["caps"] = list(caps)
    auth: dict[str, str] = {}
    if token is not None:
        auth["token"] = token
    if password is not None:
        auth["password"] = password
    if device_token is not None:
        auth["deviceToken"] = device_token
    if auth:
        params["auth"] = auth
    if extra:
        params.update({key: value for key, value in extra.items() if value is not None})
    return params


@dataclass(frozen=True, slots=True)
class Challenge:
    """What a ``connect.challenge`` event offers: the nonce to sign and the server clock."""

    nonce: str | None
    ts: int | None


def parse_challenge(event: Event) -> Challenge:
    """Return the nonce and ``ts`` of a ``connect.challenge`` event; absent ones are None."""
    payload = event.payload if isinstance(event.payload, dict) else {}
    nonce = payload.get("nonce")
    ts = payload.get("ts")
    return Challenge(
        nonce=nonce if isinstance(nonce, str) and nonce else None,
        ts=ts if isinstance(ts, int) and not isinstance(ts, bool) and ts >= 0 else None,
    )


def sign_device(
    params: Mapping[str, Any],
    identity: DeviceIdentity,
    *,
    nonce: str,
    signed_at_ms: int,
) -> dict[str, Any]:
    """Return the ``device`` block for ``params``, signed over the v3 payload string.

    The fields are read from ``params`` themselves, after every default and extra member
    has been applied, because the server rebuilds the payload from what it received
    (spec §4.2): signing anything else fails verification.

    Args:
        params: The ``connect`` params exactly as they will be sent, without ``device``.
        identity: The key pair to sign with.
        nonce: The challenge nonce.
        signed_at_ms: ``device.signedAt``: the challenge ``ts``, or the local clock.

    Returns:
        ``{id, publicKey, signature, signedAt, nonce}``.
    """
    client = params.get("client")
    client = client if isinstance(client, Mapping) else {}
    auth = params.get("auth")
    auth = auth if isinstance(auth, Mapping) else {}
    scopes = params.get("scopes")
    fields = SignedFields(
        device_id=identity.device_id,
        client_id=_text(client.get("id")),
        client_mode=_text(client.get("mode")),
        role=_text(params.get("role", "operator")),
        scopes=tuple(_text(scope) for scope in scopes) if isinstance(scopes, list | tuple) else (),
        signed_at_ms=signed_at_ms,
        token=select_signed_token(
            _optional_text(auth.get("token")),
            _optional_text(auth.get("deviceToken")),
            _optional_text(auth.get("bootstrapToken")),
        ),
        nonce=nonce,
        platform=_optional_text(client.get("platform")),
        device_family=_optional_text(client.get("deviceFamily")),
    )
    return {
        "id": identity.device_id,
        "publicKey": identity.public_key_b64url,
        "signature": identity.sign(build_payload_v3(fields)),
        "signedAt": signed_at_ms,
        "nonce": nonce,
    }


def _text(value: Any) -> str:
    """Return ``value`` if it is a string, else ``""`` (the server rejects such params)."""
    return value if isinstance(value, str) else ""


def _optional_text(value: Any) -> str | None:
    """Return ``value`` if it is a string, else None (absent)."""
    return value if isinstance(value, str) else None


def issued_device_token(
    hello: Mapping[str, Any], *, default_role: str, now_ms: int
) -> StoredToken | None:
    """Return the device token a ``hello-ok`` payload carries, or None.

    Protocol 4 always sends ``auth {role, scopes, deviceToken?, issuedAtMs?}``; protocol 3
    sends ``auth {deviceToken, role, scopes, issuedAtMs}`` only with a token (spec §3.4).

    Args:
        hello: The ``hello-ok`` payload.
        default_role: The role requested, used if ``auth.role`` is missing.
        now_ms: The local clock, used if ``auth.issuedAtMs`` is missing.
    """
    auth = hello.get("auth")
    if not isinstance(auth, Mapping):
        return None
    token = auth.get("deviceToken")
    if not isinstance(token, str) or not token:
        return None
    role = auth.get("role")
    scopes = auth.get("scopes")
    issued_at = auth.get("issuedAtMs")
    return StoredToken(
        role=role if isinstance(role, str) and role else default_role,
        token=token,
        scopes=tuple(s for s in scopes if isinstance(s, str)) if isinstance(scopes, list) else (),
        issued_at_ms=(
            issued_at if isinstance(issued_at, int) and not isinstance(issued_at, bool) else now_ms
        ),
    )


class SeqTracker:
    """Check that a connection's broadcast events arrive as seq 1, 2, 3, ...

    Use one tracker per connection: ``seq`` restarts at 1 on every new connection.
    """

    __slots__ = ("_expected",)

    def __init__(self) -> None:
        self._expected = 1

    @property
    def expected(self) -> int:
        """Return the seq the next broadcast event should carry."""
        return self._expected

    def observe(self, seq: int) -> tuple[int, int] | None:
        """Record ``seq`` and return ``(expected, got)`` if it is not the expected one."""
        expected = self._expected
        # Resynchronise on whatever arrived so one gap is reported once, not on every event.
        self._expected = seq + 1
        if seq == expected:
            return None
        return expected, seq
