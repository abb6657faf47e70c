"""Reconnect backoff schedule and give-up rule of the client SDK, without sockets."""

from __future__ import annotations

import random

import pytest

from clawgate.client import (
    Backoff,
    GatewayConnectionError,
    GatewayHandshakeError,
    GatewayTimeoutError,
)
from clawgate.client._backoff import is_fatal_handshake_error, retry_floor


class RecordingRand:
    """Stand-in for random.uniform that returns the upper bound and records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def __call__(self, low: float, high: float) -> float:
        self.calls.append((low, high))
        return high


def test_ceilings_double_from_initial_up_to_maximum() -> None:
    rand = RecordingRand()
    backoff = Backoff(0.25, 2.0, rand=rand)

    delays = [backoff.next_delay() for _ in range(6)]

    assert delays == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_jitter_is_full_range_from_zero() -> None:
    rand = RecordingRand()
    backoff = Backoff(1.0, 8.0, rand=rand)

    for _ in range(3):
        backoff.next_delay()

    assert rand.calls == [(0.0, 1.0), (0.0, 2.0), (0.0, 4.0)]


def test_delay_is_what_the_random_source_returns() -> None:
    backoff = Backoff(1.0, 8.0, rand=lambda low, high: (low + high) / 2)

    assert backoff.next_delay() == 0.5
    assert backoff.next_delay() == 1.0


def test_reset_restarts_the_schedule() -> None:
    backoff = Backoff(0.5, 30.0, rand=RecordingRand())
    for _ in range(4):
        backoff.next_delay()

    backoff.reset()

    assert backoff.attempts == 0
    assert backoff.ceiling == 0.5
    assert backoff.next_delay() == 0.5


def test_attempts_counts_delays_handed_out() -> None:
    backoff = Backoff(rand=RecordingRand())

    backoff.next_delay()
    backoff.next_delay()

    assert backoff.attempts == 2


def test_many_attempts_stay_at_maximum_without_overflow() -> None:
    backoff = Backoff(0.25, 30.0, rand=RecordingRand())

    for _ in range(5000):
        delay = backoff.next_delay()

    assert delay == 30.0


def test_default_random_source_stays_within_the_ceiling() -> None:
    random.seed(1234)
    backoff = Backoff(0.25, 1.0)

    for _ in range(200):
        ceiling = backoff.ceiling
        assert 0.0 <= backoff.next_delay() <= ceiling


@pytest.mark.parametrize(("initial", "maximum"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_invalid_bounds_are_rejected(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, maximum)


@pytest.mark.parametrize(
    ("code", "close_code"),
    [
        ("INVALID_REQUEST", 1008),  # wrong token, rate limited, invalid role
        ("INVALID_REQUEST", 1002),  # protocol mismatch
        ("NOT_PAIRED", 1008),  # pairing required
        ("INVALID_REQUEST", None),  # refused, close frame never seen
    ],
)
def test_auth_and_protocol_refusals_stop_reconnecting(code: str, close_code: int | None) -> None:
    exc = GatewayHandshakeError(code, "refused", close_code=close_code)

    assert is_fatal_handshake_error(exc)


def test_gateway_starting_refusal_is_retried() -> None:
    exc = GatewayHandshakeError(
        "UNAVAILABLE", "gateway starting; retry shortly", retryable=True, close_code=1013
    )

    assert not is_fatal_handshake_error(exc)


@pytest.mark.parametrize(
    "exc",
    [
        GatewayConnectionError("closed", close_code=1012, close_reason="service restart"),
        GatewayConnectionError("refused"),  # connection refused / HTTP 503 during shutdown
        GatewayConnectionError("abnormal", close_code=1006),
        GatewayTimeoutError("handshake timed out"),
        OSError("network unreachable"),
    ],
)
def test_network_failures_and_restarts_are_retried(exc: BaseException) -> None:
    assert not is_fatal_handshake_error(exc)


def test_close_with_policy_violation_during_handshake_stops_reconnecting() -> None:
    exc = GatewayConnectionError("closed", close_code=1008, close_reason="invalid request frame")

    assert is_fatal_handshake_error(exc)


def test_retry_floor_honours_retry_after_ms() -> None:
    exc = GatewayHandshakeError("UNAVAILABLE", "starting", retryable=True, retry_after_ms=500)

    assert retry_floor(exc) == 0.5


def test_retry_floor_is_zero_without_a_hint() -> None:
    assert retry_floor(GatewayConnectionError("refused")) == 0.0
    assert retry_floor(GatewayHandshakeError("UNAVAILABLE", "starting")) == 0.0
