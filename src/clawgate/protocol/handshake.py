"""The connect handshake as a pure state machine (spec §3.5).

The I/O shell feeds it the frames received before `hello-ok` and carries out what it
returns: an `Accepted` (send `hello-ok`) or a `Rejected` (optionally write an error
response, then close). Checks run in the spec's order; the first failure decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final
from urllib.parse import urlsplit

from pydantic import ValidationError

from .auth import AuthFailure, AuthThrottle, FailureKind, SharedSecretAuth
from .connect import ConnectParams, negotiate_protocol
from .detail_codes import (
    AUTH_DEVICE_TOKEN_MISMATCH,
    AUTH_RATE_LIMITED,
    CONTROL_UI_ORIGIN_NOT_ALLOWED,
    DEVICE_IDENTITY_REQUIRED,
    PAIRING_REQUIRED,
)
from .device_auth import (
    DeviceAuthError,
    SignedFields,
    normalize_ascii_lower,
    select_signed_token,
    verify_device,
)
from .errors import NOT_PAIRED, InvalidRequest, RequestError, Unavailable
from .frames import FrameError, parse_request
from .limits import Limits
from .nodes import SurfaceApplicant, SurfaceChanges, SurfaceRegistry
from .pairing import Applicant, DeviceRecord, PairingRegistry, PendingRequest
from .scopes import Role, effective_scopes
from .validation import describe_validation_error

__all__ = [
    "CLOSE_AUTH_CHANGED",
    "CLOSE_BINARY",
    "CLOSE_HANDSHAKE_TIMEOUT",
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL",
    "CLOSE_RESTART",
    "CLOSE_STARTING",
    "CLOSE_TOO_LARGE",
    "Accepted",
    "HandshakeMachine",
    "HandshakeState",
    "PairingChanges",
    "Rejected",
    "close_reason",
    "is_loopback_origin",
    "origin_allowed",
]

CLOSE_HANDSHAKE_TIMEOUT: Final = 1000
CLOSE_PROTOCOL: Final = 1002
CLOSE_BINARY: Final = 1003
CLOSE_POLICY: Final = 1008
CLOSE_TOO_LARGE: Final = 1009
CLOSE_RESTART: Final = 1012
CLOSE_STARTING: Final = 1013
CLOSE_AUTH_CHANGED: Final = 4001

_LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
# Loopback auto-approval of these needs the shared secret too (spec §6): a device token
# alone may come through an SSH tunnel, and must not widen what its device was given.
_UPGRADES_NEEDING_SECRET: Final = frozenset({"role-upgrade", "scope-upgrade"})
_MAX_REASON_BYTES: Final = 123


class HandshakeState(Enum):
    """Where a connection is in its handshake."""

    AWAITING_CONNECT = "awaiting-connect"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(slots=True)
class PairingChanges:
    """What a handshake changed in the pairing registry, for the shell to persist and announce."""

    device: DeviceRecord | None = None
    pending: PendingRequest | None = None
    pending_is_new: bool = False
    auto_approved: str | None = None  # request id approved on the spot
    dropped_requests: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Close the socket, after writing `error` as the response to `reply_id` if given."""

    close_code: int
    close_reason: str
    error: RequestError | None = None
    reply_id: str | None = None
    delay_ms: int = 0
    pairing: PairingChanges | None = None


@dataclass(frozen=True, slots=True)
class _Credential:
    """What step 13 accepted: the device token used (if any) and whether the shared secret was."""

    device_token: str | None = field(default=None, repr=False)
    shared_secret: bool = False


@dataclass(frozen=True, slots=True)
class Accepted:
    """The client is in: answer `request_id` with `hello-ok`."""

    request_id: str
    params: ConnectParams
    protocol: int
    role: Role
    scopes: tuple[str, ...]
    device_id: str | None
    device_token: str | None = field(default=None, repr=False)
    token_issued_at_ms: int | None = None
    pairing: PairingChanges | None = None
    via_device_token: bool = False
    # A node's command surface: approved, approved now, or waiting (spec §10.5).
    surface: SurfaceChanges | None = None


def close_reason(message: str) -> str:
    """Truncate a close reason to 123 UTF-8 bytes at a character boundary."""
    encoded = message.encode()
    if len(encoded) <= _MAX_REASON_BYTES:
        return message
    return encoded[:_MAX_REASON_BYTES].decode("utf-8", errors="ignore")


def is_loopback_origin(origin: str) -> bool:
    """Return whether a browser Origin names a loopback host."""
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return False
    return host in _LOOPBACK_HOSTS


def origin_allowed(origin: str, allowed_origins: frozenset[str]) -> bool:
    """Return whether a browser page from `origin` may open a socket (spec §5.5)."""
    return is_loopback_origin(origin) or origin in allowed_origins


def _utf8_length_exceeds(text: str, limit: int) -> bool:
    """Return whether `text` is longer than `limit` bytes, encoding only when it must."""
    if len(text) > limit:
        return True
    if len(text) * 4 <= limit:
        return False
    return len(text.encode()) > limit


def _reject(error: RequestError, reply_id: str, close_code: int = CLOSE_POLICY) -> Rejected:
    return Rejected(close_code, close_reason(error.message), error, reply_id)


class HandshakeMachine:
    """Decide one connection's handshake, from challenge to `hello-ok` or close."""

    def __init__(
        self,
        *,
        nonce: str,
        auth: SharedSecretAuth,
        throttle: AuthThrottle,
        limits: Limits,
        remote_ip: str,
        origin: str | None = None,
        allowed_origins: frozenset[str] = frozenset(),
        pairing: PairingRegistry | None = None,
        auto_approve: bool = False,
        surfaces: SurfaceRegistry | None = None,
    ) -> None:
        self.nonce = nonce
        self.state = HandshakeState.AWAITING_CONNECT
        self._auth = auth
        self._throttle = throttle
        self._limits = limits
        self._remote_ip = remote_ip
        self._origin = origin
        self._allowed_origins = allowed_origins
        self._pairing = pairing
        self._auto_approve = auto_approve
        self._surfaces = surfaces
        self._shared_secret_ok = False

    def challenge(self, now_ms: int) -> dict[str, object]:
        """Return the `connect.challenge` payload sent when the socket opens."""
        return {"nonce": self.nonce, "ts": now_ms}

    def timed_out(self) -> Rejected:
        """Return the close for a handshake that did not finish in time (step 0)."""
        return self._finish(Rejected(CLOSE_HANDSHAKE_TIMEOUT, "handshake timeout"))

    def receive_binary(self) -> Rejected:
        """Return the close for a binary frame (step 1)."""
        return self._finish(Rejected(CLOSE_BINARY, "binary frames not supported"))

    def receive_text(self, text: str, *, ready: bool, now_ms: int) -> Accepted | Rejected:
        """Run steps 2 to 16 on one text frame received before `hello-ok`."""
        outcome = self._decide(text, ready=ready, now_ms=now_ms)
        if isinstance(outcome, Accepted):
            self.state = HandshakeState.ACCEPTED
            return outcome
        return self._finish(outcome)

    def _finish(self, rejected: Rejected) -> Rejected:
        self.state = HandshakeState.REJECTED
        return rejected

    def _decide(self, text: str, *, ready: bool, now_ms: int) -> Accepted | Rejected:
        if _utf8_length_exceeds(text, self._limits.preauth_max_payload):
            return Rejected(CLOSE_TOO_LARGE, "preauth payload too large")
        try:
            request = parse_request(text)
        except FrameError:
            return Rejected(CLOSE_POLICY, "invalid request frame")
        if request.method != "connect":
            return _reject(
                InvalidRequest("invalid handshake: first request must be connect"), request.id
            )
        try:
            params = ConnectParams.model_validate({} if request.params is None else request.params)
        except ValidationError as exc:
            error = InvalidRequest(f"invalid connect params: {describe_validation_error(exc)}")
            return _reject(error, request.id)
        if not ready:
            starting = Unavailable(
                "gateway starting; retry shortly",
                details={"reason": "startup-sidecars"},
                retryable=True,
                retry_after_ms=500,
            )
            return Rejected(CLOSE_STARTING, "gateway starting", starting, request.id)
        try:
            protocol = negotiate_protocol(params.minProtocol, params.maxProtocol)
        except RequestError as exc:
            return _reject(exc, request.id, CLOSE_PROTOCOL)
        role = self._role(params)
        if role is None:
            return _reject(InvalidRequest("invalid role"), request.id)
        if self._origin is not None and not self._origin_allowed(self._origin):
            error = InvalidRequest(
                "origin not allowed", details={"code": CONTROL_UI_ORIGIN_NOT_ALLOWED}
            )
            return _reject(error, request.id)
        locked_ms = self._lockout_ms(params, now_ms)
        if locked_ms > 0:
            return _reject(AuthFailure(AUTH_RATE_LIMITED, retry_after_ms=locked_ms), request.id)
        device_id = None
        if params.device is not None:
            try:
                device_id = self._verify_device(params, now_ms)
            except DeviceAuthError as exc:
                error = InvalidRequest(
                    exc.message, details={"code": exc.code, "reason": exc.reason}
                )
                return _reject(error, request.id)
        scopes = effective_scopes(role, params.scopes)
        credential = self._check_credentials(params, role, device_id, now_ms)
        if isinstance(credential, AuthFailure):
            return Rejected(
                CLOSE_POLICY,
                close_reason(credential.message),
                credential,
                request.id,
                delay_ms=self._limits.auth_failure_delay_ms,
            )
        if params.device is None:
            if role is not Role.OPERATOR:
                missing_device = RequestError(
                    "device identity required",
                    code=NOT_PAIRED,
                    details={"code": DEVICE_IDENTITY_REQUIRED},
                )
                return _reject(missing_device, request.id)
            return Accepted(request.id, params, protocol, role, scopes, None)
        assert device_id is not None
        if self._pairing is None:
            # Without a pairing store a verified device is admitted on the shared secret.
            return Accepted(request.id, params, protocol, role, scopes, device_id)
        return self._pair_and_issue(
            request.id, params, protocol, role, scopes, device_id, credential, now_ms
        )

    def _check_credentials(
        self, params: ConnectParams, role: Role, device_id: str | None, now_ms: int
    ) -> AuthFailure | _Credential:
        """Step 13: return the failure, or what was accepted."""
        auth = params.auth
        token = auth.token if auth else None
        password = auth.password if auth else None
        device_token = auth.deviceToken if auth else None
        shared_failure = self._auth.check(token, password)
        self._shared_secret_ok = shared_failure is None
        if shared_failure is None:
            valid = self._device_token_ok(device_id, role, device_token)
            return _Credential(device_token if valid else None, shared_secret=True)
        # A device may log in with its device token, sent as deviceToken or in token.
        candidate = device_token if device_token is not None else token
        if candidate is not None and self._device_token_ok(device_id, role, candidate):
            return _Credential(candidate)
        # One count per IP for every guess at the shared secret, whatever came with it.
        kind = (
            FailureKind.DEVICE_TOKEN
            if device_token is not None and not self._auth.presented(token, password)
            else FailureKind.SHARED_SECRET
        )
        self._throttle.record_failure(self._remote_ip, kind, now_ms)
        if device_id is not None:
            self._throttle.record_failure(device_id, kind, now_ms)
        if device_token is not None:
            return AuthFailure(AUTH_DEVICE_TOKEN_MISMATCH)
        can_retry = (
            device_id is not None
            and self._pairing is not None
            and self._pairing.token_for(device_id, role.value) is not None
        )
        return AuthFailure(shared_failure.auth_code, can_retry_with_device_token=can_retry)

    def _device_token_ok(self, device_id: str | None, role: Role, presented: str | None) -> bool:
        if device_id is None or presented is None or self._pairing is None:
            return False
        return self._pairing.token_matches(device_id, role.value, presented)

    def _pair_and_issue(
        self,
        request_id: str,
        params: ConnectParams,
        protocol: int,
        role: Role,
        scopes: tuple[str, ...],
        device_id: str,
        credential: _Credential,
        now_ms: int,
    ) -> Accepted | Rejected:
        """Steps 15 and 16: pairing (or auto-approval), then the device token."""
        pairing = self._pairing
        device = params.device
        assert pairing is not None and device is not None
        applicant = Applicant(
            device_id=device_id,
            public_key=device.publicKey,
            role=role.value,
            scopes=scopes,
            platform=normalize_ascii_lower(params.client.platform) or None,
            device_family=normalize_ascii_lower(params.client.deviceFamily) or None,
            display_name=params.client.displayName,
            client_id=params.client.id,
            client_mode=params.client.mode,
            remote_ip=self._remote_ip,
        )
        reason = pairing.pairing_reason(applicant)
        changes = PairingChanges()
        if reason is not None:
            pending, is_new, dropped = pairing.request(applicant, reason, now_ms)
            changes.dropped_requests.extend(dropped)
            auto_approve = self._auto_approve and (
                credential.shared_secret or reason not in _UPGRADES_NEEDING_SECRET
            )
            if not auto_approve:
                changes.pending = pending
                changes.pending_is_new = is_new
                error = RequestError(
                    "pairing required",
                    code=NOT_PAIRED,
                    details={
                        "code": PAIRING_REQUIRED,
                        "requestId": pending.request_id,
                        "reason": reason,
                    },
                )
                rejected = _reject(error, request_id)
                return Rejected(
                    rejected.close_code,
                    rejected.close_reason,
                    rejected.error,
                    rejected.reply_id,
                    pairing=changes,
                )
            pairing.approve(pending.request_id, now_ms)
            changes.auto_approved = pending.request_id
        presented_token = credential.device_token
        token_value, token = pairing.issue(device_id, role.value, scopes, now_ms, presented_token)
        changes.device = pairing.devices[device_id]
        issued_at = token.rotated_at_ms or token.created_at_ms
        surface = self._node_surface(params, role, device_id, now_ms)
        return Accepted(
            request_id,
            params,
            protocol,
            role,
            scopes,
            device_id,
            device_token=token_value,
            token_issued_at_ms=issued_at,
            pairing=changes,
            via_device_token=presented_token is not None,
            surface=surface,
        )

    def _node_surface(
        self, params: ConnectParams, role: Role, device_id: str, now_ms: int
    ) -> SurfaceChanges | None:
        """Step 16 for a node: its declared commands are approved, approved now, or asked for.

        Loopback with the shared secret approves at once, as for device pairing (§6); a
        node that presents only its device token waits for an operator.
        """
        if role is not Role.NODE or self._surfaces is None:
            return None
        client = params.client
        applicant = SurfaceApplicant(
            node_id=device_id,
            commands=tuple(dict.fromkeys(params.commands or ())),
            caps=tuple(dict.fromkeys(params.caps or ())),
            display_name=client.displayName,
            platform=client.platform,
            version=client.version,
            device_family=client.deviceFamily,
            model_identifier=client.modelIdentifier,
            client_id=client.id,
            client_mode=client.mode,
            remote_ip=self._remote_ip,
        )
        auto = self._auto_approve and self._shared_secret_ok
        return self._surfaces.connect(applicant, auto_approve=auto, now_ms=now_ms)

    def _lockout_ms(self, params: ConnectParams, now_ms: int) -> int:
        """Step 11: the longer of the address's and the device's lockouts."""
        locked = self._throttle.lockout_remaining_ms(self._remote_ip, now_ms)
        if params.device is not None:
            device_key = params.device.id.lower()
            locked = max(locked, self._throttle.lockout_remaining_ms(device_key, now_ms))
        return locked

    @staticmethod
    def _role(params: ConnectParams) -> Role | None:
        """Return the role if role and mode agree (spec §3.2), else None."""
        mode = params.client.mode
        if params.role == Role.OPERATOR.value and mode not in ("node", "worker"):
            return Role.OPERATOR
        if params.role == Role.NODE.value and mode == "node":
            return Role.NODE
        return None

    def _origin_allowed(self, origin: str) -> bool:
        return origin_allowed(origin, self._allowed_origins)

    def _verify_device(self, params: ConnectParams, now_ms: int) -> str:
        device = params.device
        assert device is not None
        auth = params.auth
        fields = SignedFields(
            device_id=device.id,
            client_id=params.client.id,
            client_mode=params.client.mode,
            role=params.role,
            scopes=tuple(params.scopes),
            signed_at_ms=device.signedAt,
            token=select_signed_token(
                auth.token if auth else None,
                auth.deviceToken if auth else None,
                auth.bootstrapToken if auth else None,
            ),
            nonce=device.nonce,
            platform=params.client.platform,
            device_family=params.client.deviceFamily,
        )
        verified = verify_device(
            device_id=device.id,
            public_key=device.publicKey,
            signature=device.signature,
            signed_at_ms=device.signedAt,
            nonce=device.nonce,
            challenge_nonce=self.nonce,
            fields=fields,
            now_ms=now_ms,
            max_skew_ms=self._limits.device_signature_skew_ms,
        )
        return verified.device_id
