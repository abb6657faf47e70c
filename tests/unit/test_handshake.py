"""The handshake machine's decision order, without sockets (spec §3.5)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from clawgate.protocol.auth import AuthMode, AuthThrottle, FailureKind, SharedSecretAuth
from clawgate.protocol.device_auth import DeviceIdentity, SignedFields, build_payload_v3
from clawgate.protocol.handshake import (
    Accepted,
    HandshakeMachine,
    HandshakeState,
    Rejected,
    close_reason,
    is_loopback_origin,
)
from clawgate.protocol.limits import Limits
from clawgate.protocol.scopes import Role

TOKEN = "test-token"
NOW = 1_700_000_000_000


def machine(
    *,
    origin: str | None = None,
    throttle: AuthThrottle | None = None,
    auth: SharedSecretAuth | None = None,
) -> HandshakeMachine:
    return HandshakeMachine(
        nonce="nonce-1",
        auth=auth or SharedSecretAuth(AuthMode.TOKEN, TOKEN),
        throttle=throttle or AuthThrottle(Limits()),
        limits=Limits(),
        remote_ip="127.0.0.1",
        origin=origin,
        allowed_origins=frozenset({"https://app.example"}),
    )


def connect_params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "minProtocol": 3,
        "maxProtocol": 4,
        "client": {"id": "test", "version": "1.0", "platform": "linux", "mode": "test"},
        "scopes": ["operator.read"],
        "auth": {"token": TOKEN},
    }
    params.update(overrides)
    return params


def frame(params: Any = None, method: str = "connect", frame_id: str = "c1") -> str:
    body: dict[str, Any] = {"type": "req", "id": frame_id, "method": method}
    if params is not None:
        body["params"] = params
    return orjson.dumps(body).decode()


def decide(text: str, *, ready: bool = True, m: HandshakeMachine | None = None) -> Any:
    return (m or machine()).receive_text(text, ready=ready, now_ms=NOW)


def rejected(text: str, **kwargs: Any) -> Rejected:
    outcome = decide(text, **kwargs)
    assert isinstance(outcome, Rejected), outcome
    return outcome


def test_valid_connect_is_accepted_on_protocol_4() -> None:
    m = machine()
    outcome = decide(frame(connect_params()), m=m)
    assert isinstance(outcome, Accepted)
    assert (outcome.protocol, outcome.role, outcome.scopes) == (
        4,
        Role.OPERATOR,
        ("operator.read",),
    )
    assert m.state is HandshakeState.ACCEPTED


def test_protocol_3_only_client_gets_3() -> None:
    outcome = decide(frame(connect_params(maxProtocol=3)))
    assert isinstance(outcome, Accepted) and outcome.protocol == 3


def test_challenge_payload_has_nonce_and_ts() -> None:
    assert machine().challenge(NOW) == {"nonce": "nonce-1", "ts": NOW}


def test_binary_closes_1003() -> None:
    assert machine().receive_binary().close_code == 1003


def test_timeout_closes_1000() -> None:
    result = machine().timed_out()
    assert (result.close_code, result.close_reason) == (1000, "handshake timeout")


def test_oversize_preauth_frame_closes_1009() -> None:
    text = frame(connect_params(userAgent="x" * 70_000))
    result = rejected(text)
    assert (result.close_code, result.close_reason, result.error) == (
        1009,
        "preauth payload too large",
        None,
    )


def test_multibyte_frame_measured_in_bytes() -> None:
    text = frame(connect_params(userAgent="é" * 33_000))  # 66 000 bytes, 33 000 characters
    assert rejected(text).close_code == 1009


@pytest.mark.parametrize("text", ["not json", "[]", '{"type":"req","id":1,"method":"connect"}'])
def test_non_request_closes_1008_without_response(text: str) -> None:
    result = rejected(text)
    assert (result.close_code, result.close_reason, result.error) == (
        1008,
        "invalid request frame",
        None,
    )


def test_first_request_must_be_connect() -> None:
    result = rejected(frame(method="health"))
    assert result.close_code == 1008
    assert result.error is not None
    assert result.error.message == "invalid handshake: first request must be connect"
    assert result.reply_id == "c1"


def test_unknown_connect_property_is_named() -> None:
    result = rejected(frame(connect_params(bogus=1)))
    assert result.error is not None
    assert result.error.message == "invalid connect params: at root: unexpected property 'bogus'"
    assert result.close_code == 1008


def test_missing_max_protocol_is_named() -> None:
    params = connect_params()
    del params["maxProtocol"]
    result = rejected(frame(params))
    assert result.error is not None
    assert "must have required property 'maxProtocol'" in result.error.message


def test_unknown_client_id_is_refused() -> None:
    params = connect_params(client={"id": "evil", "version": "1", "platform": "x", "mode": "test"})
    result = rejected(frame(params))
    assert result.error is not None and "/client/id" in result.error.message


def test_not_ready_closes_1013_retryable() -> None:
    result = rejected(frame(connect_params()), ready=False)
    assert result.close_code == 1013
    assert result.error is not None
    assert result.error.to_shape() == {
        "code": "UNAVAILABLE",
        "message": "gateway starting; retry shortly",
        "details": {"reason": "startup-sidecars"},
        "retryable": True,
        "retryAfterMs": 500,
    }


def test_protocol_mismatch_closes_1002_with_details() -> None:
    result = rejected(frame(connect_params(minProtocol=99, maxProtocol=99)))
    assert (result.close_code, result.close_reason) == (1002, "protocol mismatch")
    assert result.error is not None
    assert result.error.details == {
        "code": "PROTOCOL_MISMATCH",
        "clientMinProtocol": 99,
        "clientMaxProtocol": 99,
        "expectedProtocol": 4,
        "minimumProbeProtocol": 3,
    }


def test_inverted_range_is_a_mismatch() -> None:
    assert rejected(frame(connect_params(minProtocol=4, maxProtocol=3))).close_code == 1002


@pytest.mark.parametrize(
    ("role", "mode"),
    [("node", "test"), ("operator", "node"), ("operator", "worker"), ("admin", "test")],
)
def test_role_and_mode_must_agree(role: str, mode: str) -> None:
    client = {"id": "test", "version": "1", "platform": "linux", "mode": mode}
    result = rejected(frame(connect_params(role=role, client=client)))
    assert result.error is not None and result.error.message == "invalid role"


def test_foreign_origin_is_refused() -> None:
    result = rejected(frame(connect_params()), m=machine(origin="https://evil.example"))
    assert result.error is not None
    assert result.error.details == {"code": "CONTROL_UI_ORIGIN_NOT_ALLOWED"}


@pytest.mark.parametrize(
    "origin",
    ["http://localhost:3000", "http://127.0.0.1", "http://[::1]:8080", "https://app.example"],
)
def test_loopback_and_listed_origins_pass(origin: str) -> None:
    assert isinstance(decide(frame(connect_params()), m=machine(origin=origin)), Accepted)


def test_wrong_token_is_delayed_and_counted() -> None:
    throttle = AuthThrottle(Limits())
    result = rejected(frame(connect_params(auth={"token": "nope"})), m=machine(throttle=throttle))
    assert result.delay_ms == 250
    assert result.error is not None
    assert result.error.details["code"] == "AUTH_TOKEN_MISMATCH"  # type: ignore[index]
    for _ in range(9):
        throttle.record_failure("127.0.0.1", FailureKind.SHARED_SECRET, NOW)
    locked = rejected(frame(connect_params()), m=machine(throttle=throttle))
    assert locked.error is not None
    assert locked.error.details["code"] == "AUTH_RATE_LIMITED"  # type: ignore[index]
    assert locked.error.retryable is True and locked.error.retry_after_ms == 60_000


def test_missing_token_code() -> None:
    result = rejected(frame(connect_params(auth=None)))
    assert result.error is not None
    assert result.error.details["code"] == "AUTH_TOKEN_MISSING"  # type: ignore[index]


def test_node_without_device_needs_identity() -> None:
    client = {"id": "node-host", "version": "1", "platform": "linux", "mode": "node"}
    result = rejected(frame(connect_params(role="node", client=client)))
    assert result.error is not None
    assert result.error.code == "NOT_PAIRED"
    assert result.error.details == {"code": "DEVICE_IDENTITY_REQUIRED"}


def test_device_with_bad_signature_is_refused_before_credentials() -> None:
    identity = DeviceIdentity.generate()
    params = connect_params(
        auth={"token": "wrong"},
        device={
            "id": identity.device_id,
            "publicKey": identity.public_key_b64url,
            "signature": identity.sign("something else"),
            "signedAt": NOW,
            "nonce": "nonce-1",
        },
    )
    result = rejected(frame(params))
    assert result.error is not None
    assert result.error.details == {
        "code": "DEVICE_AUTH_SIGNATURE_INVALID",
        "reason": "device-signature",
    }


def test_signed_device_with_token_is_accepted() -> None:
    identity = DeviceIdentity.generate()
    fields = SignedFields(
        device_id=identity.device_id,
        client_id="test",
        client_mode="test",
        scopes=("operator.read",),
        signed_at_ms=NOW,
        token=TOKEN,
        nonce="nonce-1",
        platform="linux",
    )
    params = connect_params(
        device={
            "id": identity.device_id,
            "publicKey": identity.public_key_b64url,
            "signature": identity.sign(build_payload_v3(fields)),
            "signedAt": NOW,
            "nonce": "nonce-1",
        }
    )
    outcome = decide(frame(params))
    assert isinstance(outcome, Accepted) and outcome.device_id == identity.device_id


def test_close_reason_is_truncated_at_a_character_boundary() -> None:
    reason = close_reason("é" * 100)
    assert len(reason.encode()) <= 123 and reason == "é" * 61


def test_is_loopback_origin_rejects_garbage() -> None:
    assert is_loopback_origin("http://[bad") is False
