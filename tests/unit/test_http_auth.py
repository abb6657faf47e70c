"""Bearer credentials on HTTP, decided without sockets: secret, device tokens, lockout."""

from __future__ import annotations

from clawgate.protocol.auth import AuthMode, AuthThrottle, SharedSecretAuth
from clawgate.protocol.http_auth import (
    Admitted,
    CredentialCheck,
    Refusal,
    Refused,
    bearer_token,
)
from clawgate.protocol.limits import Limits
from clawgate.protocol.pairing import DeviceRecord, DeviceToken, PairingRegistry, hash_token

SECRET = "s3cret-gateway-token"
IP = "203.0.113.5"


def _registry() -> PairingRegistry:
    def device(device_id: str, scopes: tuple[str, ...], token: str) -> DeviceRecord:
        return DeviceRecord(
            device_id=device_id,
            public_key="k",
            roles=("operator",),
            approved_scopes=scopes,
            created_at_ms=0,
            approved_at_ms=0,
            tokens={"operator": DeviceToken("operator", hash_token(token), scopes, 0)},
        )

    return PairingRegistry(
        [
            device("writer", ("operator.write",), "tok-w"),
            device("reader", ("operator.read",), "tok-r"),
        ]
    )


def _check(mode: AuthMode = AuthMode.TOKEN) -> tuple[CredentialCheck, AuthThrottle]:
    throttle = AuthThrottle(Limits())
    auth = SharedSecretAuth(mode, SECRET if mode is not AuthMode.NONE else None)
    return CredentialCheck(auth, _registry(), throttle), throttle


def _operator(check: CredentialCheck, token: str | None, now: int = 0) -> Admitted | Refused:
    return check.operator(token, remote_ip=IP, now_ms=now)


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_shared_secret_and_writer_device_token_are_admitted() -> None:
    check, _ = _check()
    assert _operator(check, SECRET) == Admitted()
    assert _operator(check, "tok-w") == Admitted("writer")


def test_password_mode_takes_the_password_as_bearer() -> None:
    check, _ = _check(AuthMode.PASSWORD)
    assert _operator(check, SECRET) == Admitted()


def test_read_only_device_token_is_refused_without_counting() -> None:
    check, throttle = _check()
    refused = _operator(check, "tok-r")
    assert refused == Refused(Refusal.INSUFFICIENT_SCOPE) and not refused.counted
    assert throttle.lockout_remaining_ms(IP, 0) == 0


def test_missing_and_wrong_tokens_are_counted_failures() -> None:
    check, _ = _check()
    assert _operator(check, None) == Refused(Refusal.MISSING)
    assert _operator(check, "wrong").counted  # type: ignore[union-attr]


def test_ten_failures_lock_the_address_out_even_for_the_right_token() -> None:
    check, throttle = _check()
    for attempt in range(10):
        _operator(check, "wrong", now=attempt)
    refused = _operator(check, SECRET, now=100)
    assert isinstance(refused, Refused) and refused.reason is Refusal.LOCKED_OUT
    assert refused.retry_after_ms == Limits().auth_lockout_ms - 91
    assert not refused.counted
    # The lockout is the WebSocket handshake's: the same throttle says so.
    assert throttle.lockout_remaining_ms(IP, 100) > 0


def test_hook_token_failures_count_in_the_same_throttle() -> None:
    check, throttle = _check()
    for attempt in range(10):
        check.hook_token("nope", "hook-secret", remote_ip=IP, now_ms=attempt)
    assert throttle.lockout_remaining_ms(IP, 10) > 0
    locked = check.hook_token("hook-secret", "hook-secret", remote_ip=IP, now_ms=10)
    assert isinstance(locked, Refused) and locked.reason is Refusal.LOCKED_OUT


def test_loopback_is_locked_out_like_any_address() -> None:
    check, _ = _check()
    for attempt in range(10):
        check.operator("wrong", remote_ip="127.0.0.1", now_ms=attempt)
    locked = check.operator(SECRET, remote_ip="127.0.0.1", now_ms=30)
    assert isinstance(locked, Refused) and locked.reason is Refusal.LOCKED_OUT


def test_auth_mode_none_admits_without_a_token() -> None:
    check, _ = _check(AuthMode.NONE)
    assert _operator(check, None) == Admitted()


def test_find_token_skips_revoked_tokens() -> None:
    registry = _registry()
    assert registry.find_token("tok-w") is not None
    registry.revoke("writer", "operator", 5)
    assert registry.find_token("tok-w") is None
    assert registry.find_token("unknown") is None
