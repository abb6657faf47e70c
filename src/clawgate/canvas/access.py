"""Who may use the canvas host beyond a plain static read: the gateway's own auth rules.

Pure (the clock is passed in). A `GET`/`HEAD` of a file needs nothing; the live-reload
socket and any other method need what a gateway `connect` needs (spec §5.2): the shared
token or password, or a paired device's unrevoked device token (with its device id).
The rules are the gateway's objects, read at each decision, so a secret changed by
`config.set` applies here at once; failures count in the gateway's own throttle, so
guesses at the canvas port and at the gateway port add up to one lockout (spec §5.4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..protocol.auth import AuthFailure, AuthMode, AuthThrottle, FailureKind, SharedSecretAuth
from ..protocol.detail_codes import AUTH_DEVICE_TOKEN_MISMATCH, AUTH_RATE_LIMITED
from ..protocol.handshake import is_loopback_origin
from ..protocol.http_auth import bearer_token

__all__ = [
    "AccessRules",
    "CanvasAccess",
    "Credentials",
    "Denied",
    "DeviceTokenCheck",
    "Grant",
    "credentials_from_frame",
    "credentials_from_headers",
]

#: Whether a presented device token is the unrevoked token of that device (any role).
DeviceTokenCheck = Callable[[str, str], bool]


class AccessRules(Protocol):
    """The gateway's live access rules (`gateway.access.GatewayAccess` is one)."""

    @property
    def auth(self) -> SharedSecretAuth: ...
    @property
    def throttle(self) -> AuthThrottle: ...
    @property
    def allowed_origins(self) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a client presented, shaped like `connect`'s `auth` (spec §3.2)."""

    token: str | None = None
    password: str | None = None
    device_id: str | None = None
    device_token: str | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """Access given, and what it rested on, so it can be checked again later."""

    auth: SharedSecretAuth
    device_id: str | None = None
    device_token: str | None = None


@dataclass(frozen=True, slots=True)
class Denied:
    """Access refused: the gateway's `AuthFailure` message, and when to retry if locked out."""

    message: str
    retry_after_ms: int | None = None
    # Wait this long before answering a wrong credential (spec §5.4's failure delay).
    delay_ms: int = 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def credentials_from_frame(frame: Mapping[str, Any]) -> Credentials:
    """Read credentials from the live-reload socket's `auth` frame."""
    return Credentials(
        token=_text(frame.get("token")),
        password=_text(frame.get("password")),
        device_id=_text(frame.get("deviceId")),
        device_token=_text(frame.get("deviceToken")),
    )


def credentials_from_headers(
    authorization: str | None, device_id: str | None, mode: AuthMode
) -> Credentials:
    """Read `Authorization: Bearer <secret>` (plus `X-Clawgate-Device-Id` for a device token).

    The bearer value is the shared secret of the gateway's mode (token or password), or
    with a device id, that device's token.
    """
    secret = bearer_token(authorization)
    if secret is None:
        return Credentials()
    if device_id:
        return Credentials(device_id=device_id, device_token=secret)
    if mode is AuthMode.PASSWORD:
        return Credentials(password=secret)
    return Credentials(token=secret)


class CanvasAccess:
    """Decide the canvas host's authenticated requests with the gateway's rules."""

    def __init__(
        self, rules: AccessRules, device_token_ok: DeviceTokenCheck, *, failure_delay_ms: int
    ) -> None:
        """Decide with `rules`; `failure_delay_ms` is spec §5.4's delay before a refusal."""
        self._rules = rules
        self._device_token_ok = device_token_ok
        self._delay_ms = failure_delay_ms

    @property
    def mode(self) -> AuthMode:
        """The gateway's auth mode now."""
        return self._rules.auth.mode

    def origin_allowed(self, origin: str | None, host: str, *, tls: bool) -> bool:
        """Return whether a browser page from `origin` may open the live-reload socket.

        No Origin (not a browser), the canvas's own origin, a loopback origin and the
        gateway's `allowed_origins` are allowed (spec §5.5, plus same-origin).
        """
        if origin is None:
            return True
        scheme = "https" if tls else "http"
        try:
            same = urlsplit(origin).scheme == scheme and urlsplit(origin).netloc == host
        except ValueError:
            return False
        return same or is_loopback_origin(origin) or origin in self._rules.allowed_origins

    def admit(self, credentials: Credentials, ip: str, now_ms: int) -> Grant | Denied:
        """Check `credentials` from `ip`; count a failure like a failed `connect`."""
        rules = self._rules
        auth = rules.auth
        throttle = rules.throttle
        locked_ms = throttle.lockout_remaining_ms(ip, now_ms)
        if locked_ms > 0:
            return Denied(AuthFailure(AUTH_RATE_LIMITED).message, retry_after_ms=locked_ms)
        shared_failure = auth.check(credentials.token, credentials.password)
        if shared_failure is None:
            return Grant(auth)
        # As in `connect`: a device token may come as deviceToken or in token.
        candidate = credentials.device_token or credentials.token
        device_id = credentials.device_id
        if device_id and candidate and self._device_token_ok(device_id, candidate):
            return Grant(auth, device_id=device_id, device_token=candidate)
        guessed_secret = auth.presented(credentials.token, credentials.password)
        if credentials.device_token is not None:
            kind = FailureKind.SHARED_SECRET if guessed_secret else FailureKind.DEVICE_TOKEN
            throttle.record_failure(ip, kind, now_ms)
            failure = AuthFailure(AUTH_DEVICE_TOKEN_MISMATCH)
        else:
            throttle.record_failure(ip, FailureKind.SHARED_SECRET, now_ms)
            failure = shared_failure
        return Denied(failure.message, delay_ms=self._delay_ms)

    def still_valid(self, grant: Grant) -> bool:
        """Return whether a grant holds now: same shared secret, device token not revoked."""
        if grant.device_id is not None and grant.device_token is not None:
            return self._device_token_ok(grant.device_id, grant.device_token)
        return self._rules.auth is grant.auth or self._rules.auth.mode is AuthMode.NONE
