"""Shared-secret checks and lockout (spec §5.2, §5.4)."""

import pytest

from clawgate.protocol.auth import AuthMode, AuthThrottle, FailureKind, SharedSecretAuth
from clawgate.protocol.limits import Limits


def test_token_mode_accepts_only_the_token() -> None:
    auth = SharedSecretAuth(AuthMode.TOKEN, "s3cret")
    assert auth.check("s3cret", None) is None
    mismatch = auth.check("wrong", None)
    assert mismatch is not None and mismatch.auth_code == "AUTH_TOKEN_MISMATCH"
    missing = auth.check(None, "s3cret")
    assert missing is not None and missing.auth_code == "AUTH_TOKEN_MISSING"


def test_password_mode_codes() -> None:
    auth = SharedSecretAuth(AuthMode.PASSWORD, "pw")
    assert auth.check(None, "pw") is None
    assert auth.check("pw", None).auth_code == "AUTH_PASSWORD_MISSING"  # type: ignore[union-attr]
    assert auth.check(None, "nope").auth_code == "AUTH_PASSWORD_MISMATCH"  # type: ignore[union-attr]


def test_none_mode_ignores_credentials() -> None:
    assert SharedSecretAuth(AuthMode.NONE).check("anything", None) is None


def test_secret_modes_need_a_secret() -> None:
    with pytest.raises(ValueError):
        SharedSecretAuth(AuthMode.TOKEN, None)


def test_failure_details_follow_the_spec() -> None:
    failure = SharedSecretAuth(AuthMode.TOKEN, "t").check("x", None)
    assert failure is not None
    assert failure.details == {
        "code": "AUTH_TOKEN_MISMATCH",
        "authReason": "token_mismatch",
        "canRetryWithDeviceToken": False,
        "recommendedNextStep": "update_auth_credentials",
    }
    assert failure.message == "unauthorized: gateway token mismatch (provide gateway auth token)"


def test_tenth_failure_locks_the_ip_out_then_it_is_released() -> None:
    throttle = AuthThrottle(Limits())
    for second in range(9):
        throttle.record_failure("10.0.0.1", FailureKind.SHARED_SECRET, second * 1000)
    assert throttle.lockout_remaining_ms("10.0.0.1", 9000) == 0
    throttle.record_failure("10.0.0.1", FailureKind.SHARED_SECRET, 9000)
    assert throttle.lockout_remaining_ms("10.0.0.1", 9000) == 60_000
    assert throttle.lockout_remaining_ms("10.0.0.2", 9000) == 0
    assert throttle.lockout_remaining_ms("10.0.0.1", 69_000) == 0


def test_failures_outside_the_window_do_not_count() -> None:
    throttle = AuthThrottle(Limits())
    for second in range(10):
        throttle.record_failure("ip", FailureKind.SHARED_SECRET, second * 10_000)
    assert throttle.lockout_remaining_ms("ip", 100_000) == 0


def test_kinds_are_counted_separately() -> None:
    throttle = AuthThrottle(Limits())
    for index in range(5):
        throttle.record_failure("ip", FailureKind.SHARED_SECRET, index)
        throttle.record_failure("ip", FailureKind.DEVICE_TOKEN, index)
    assert throttle.lockout_remaining_ms("ip", 10) == 0
