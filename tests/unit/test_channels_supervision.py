"""Restart backoff and stall detection (channels/supervision.py), and the outbox's gates."""

from __future__ import annotations

import pytest

from clawgate.channels.outbound import RateGates
from clawgate.channels.supervision import Backoff, BackoffPolicy, stalled


def test_backoff_starts_at_2_s_and_grows_by_half() -> None:
    backoff = Backoff(BackoffPolicy(), rand=lambda: 0.5)  # no jitter at the midpoint
    assert [backoff.next_delay() for _ in range(3)] == [2.0, 3.0, 4.5]


def test_backoff_stops_growing_at_two_minutes() -> None:
    backoff = Backoff(BackoffPolicy(), rand=lambda: 0.5)
    delays = [backoff.next_delay() for _ in range(30)]
    assert max(delays) == 120.0


@pytest.mark.parametrize(("rand", "expected"), [(0.0, 1.6), (1.0, 2.4)])
def test_jitter_is_twenty_percent_either_way(rand: float, expected: float) -> None:
    assert Backoff(BackoffPolicy(), rand=lambda: rand).next_delay() == pytest.approx(expected)


def test_a_connection_resets_the_backoff() -> None:
    backoff = Backoff(BackoffPolicy(), rand=lambda: 0.5)
    backoff.next_delay()
    backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 2.0


def test_an_account_is_stalled_only_after_its_allowance() -> None:
    assert not stalled(100.0, 130.0, 30.0)
    assert stalled(100.0, 130.1, 30.0)


def test_a_rate_limited_chat_waits_and_others_do_not() -> None:
    gates = RateGates()
    gates.block(("t", "a", "1"), until=10.0)
    assert gates.wait_s([("t", "a", "1"), ("t", "a")], now=4.0) == 6.0
    assert gates.wait_s([("t", "a", "2"), ("t", "a")], now=4.0) <= 0
