"""Bearer credentials on the gateway's HTTP surfaces, decided without I/O (spec §5 over HTTP).

The OpenAI-compatible endpoints take the gateway's shared secret or a device token whose
scopes include `operator.write`. A failed check counts toward the same per-address lockout
as a failed WebSocket `connect` (spec §5.4): it is recorded in the one `AuthThrottle`, and
while an address is locked out even a correct credential is refused. The shell answers a
failure only after the fixed delay, as the handshake does.

The webhook token is a separate secret with its own check (`check_hook_token`), counted in
the same throttle, so guessing it locks the address out of every surface.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from .auth import AuthMode, AuthThrottle, FailureKind, SharedSecretAuth, secrets_equal
from .pairing import PairingRegistry
from .scopes import WRITE, Role, scope_satisfied

__all__ = [
    "BEARER_PREFIX",
    "Admitted",
    "CredentialCheck",
    "Refusal",
    "Refused",
    "bearer_token",
]

BEARER_PREFIX: Final = "bearer "


def bearer_token(authorization: str | None) -> str | None:
    """Return the token of an `Authorization: Bearer <token>` header, or None."""
    if authorization is None or authorization[: len(BEARER_PREFIX)].lower() != BEARER_PREFIX:
        return None
    token = authorization[len(BEARER_PREFIX) :].strip()
    return token or None


class Refusal(StrEnum):
    """Why a credential was refused."""

    MISSING = "missing"
    MISMATCH = "mismatch"
    # A valid device token without `operator.write`: not counted as a failed guess.
    INSUFFICIENT_SCOPE = "insufficient-scope"
    LOCKED_OUT = "locked-out"


@dataclass(frozen=True, slots=True)
class Admitted:
    """The credential is good; `device_id` is set when it was a device token."""

    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class Refused:
    """The credential is refused; a lockout says how long it lasts."""

    reason: Refusal
    retry_after_ms: int = 0

    @property
    def counted(self) -> bool:
        """Whether this was a failed guess (answered after the failure delay)."""
        return self.reason in (Refusal.MISSING, Refusal.MISMATCH)


class CredentialCheck:
    """Decide bearer credentials against the shared secret, device tokens and the throttle.

    Args:
        auth: the gateway's shared-secret mode and secret, as they are now.
        pairing: paired devices and their tokens; None when the gateway keeps none.
        throttle: the failure counts shared with WebSocket handshakes.
    """

    def __init__(
        self, auth: SharedSecretAuth, pairing: PairingRegistry | None, throttle: AuthThrottle
    ) -> None:
        self._auth = auth
        self._pairing = pairing
        self._throttle = throttle

    def operator(self, token: str | None, *, remote_ip: str, now_ms: int) -> Admitted | Refused:
        """Decide a bearer token that must be worth `operator.write`."""
        locked = self._locked(remote_ip, now_ms)
        if locked is not None:
            return locked
        if self._auth.mode is AuthMode.NONE:
            return Admitted()
        if token is None:
            return self._fail(Refusal.MISSING, remote_ip, now_ms)
        assert self._auth.secret is not None
        if secrets_equal(token, self._auth.secret):
            return Admitted()
        found = self._pairing.find_token(token) if self._pairing is not None else None
        if found is None:
            return self._fail(Refusal.MISMATCH, remote_ip, now_ms)
        device_id, record = found
        if record.role != Role.OPERATOR.value or not scope_satisfied(record.scopes, WRITE):
            return Refused(Refusal.INSUFFICIENT_SCOPE)
        return Admitted(device_id)

    def hook_token(
        self,
        token: str | None,
        expected: str,
        *,
        remote_ip: str,
        now_ms: int,
    ) -> Admitted | Refused:
        """Decide the webhook token (a secret of its own, never the gateway's)."""
        locked = self._locked(remote_ip, now_ms)
        if locked is not None:
            return locked
        if token is None:
            return self._fail(Refusal.MISSING, remote_ip, now_ms)
        if not secrets_equal(token, expected):
            return self._fail(Refusal.MISMATCH, remote_ip, now_ms)
        return Admitted()

    def signature_failed(self, remote_ip: str, now_ms: int) -> Refused:
        """Count a webhook whose HMAC signature was missing or wrong as a failed guess."""
        return self._fail(Refusal.MISMATCH, remote_ip, now_ms)

    def lockout(self, remote_ip: str, now_ms: int) -> Refused | None:
        """Return the lockout refusal for `remote_ip`, or None when it may try."""
        return self._locked(remote_ip, now_ms)

    def _locked(self, remote_ip: str, now_ms: int) -> Refused | None:
        remaining = self._throttle.lockout_remaining_ms(remote_ip, now_ms)
        return Refused(Refusal.LOCKED_OUT, remaining) if remaining > 0 else None

    def _fail(self, reason: Refusal, remote_ip: str, now_ms: int) -> Refused:
        self._throttle.record_failure(remote_ip, FailureKind.SHARED_SECRET, now_ms)
        return Refused(reason)
