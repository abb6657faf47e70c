"""When coalesced announcements go out: at once, at the interval's end, or later for big ones."""

import itertools

import pytest

from clawgate.protocol.coalescing import CoalescingMachine

INTERVAL = 100
RATE = 1000  # bytes per second: 1 byte spreads the next announcement by 1 ms


def machine() -> CoalescingMachine:
    return CoalescingMachine(INTERVAL, RATE)


def test_first_change_is_announced_at_once() -> None:
    coalescer = machine()
    assert coalescer.changed(5_000) is True
    assert coalescer.pending is True


def test_nothing_pending_is_never_due() -> None:
    coalescer = machine()
    assert coalescer.due_at_ms is None
    assert coalescer.due(10**9) is False


def test_change_within_the_interval_waits_for_its_end() -> None:
    coalescer = machine()
    coalescer.changed(0)
    coalescer.announced(0, fanout_bytes=0)
    assert coalescer.changed(30) is False
    assert coalescer.due_at_ms == INTERVAL
    assert coalescer.due(INTERVAL - 1) is False
    assert coalescer.due(INTERVAL) is True


def test_changes_in_a_burst_ride_on_one_announcement() -> None:
    coalescer = machine()
    coalescer.announced(0, fanout_bytes=0)
    for now in range(10, 100, 10):
        assert coalescer.changed(now) is False
    assert coalescer.due_at_ms == INTERVAL
    coalescer.announced(INTERVAL, fanout_bytes=0)
    assert coalescer.pending is False
    assert coalescer.due_at_ms is None


def test_a_change_after_a_quiet_interval_is_announced_at_once() -> None:
    coalescer = machine()
    coalescer.changed(0)
    coalescer.announced(0, fanout_bytes=0)
    assert coalescer.changed(INTERVAL + 1) is True


def test_a_steady_stream_of_changes_is_announced_at_most_once_per_interval() -> None:
    coalescer = machine()
    announced_at: list[int] = []
    for now in range(1000):  # a change every millisecond for one second
        if coalescer.changed(now) or coalescer.due(now):
            coalescer.announced(now, fanout_bytes=0)
            announced_at.append(now)
    assert len(announced_at) == 10
    assert all(b - a >= INTERVAL for a, b in itertools.pairwise(announced_at))


def test_a_large_fanout_spaces_the_next_announcement_by_its_bytes() -> None:
    coalescer = machine()
    coalescer.changed(0)
    coalescer.announced(0, fanout_bytes=2_500)  # 2.5 s at 1000 bytes/s
    assert coalescer.changed(INTERVAL) is False
    assert coalescer.due_at_ms == 2_500


def test_a_small_fanout_keeps_the_minimum_interval() -> None:
    coalescer = machine()
    coalescer.announced(0, fanout_bytes=10)
    coalescer.changed(1)
    assert coalescer.due_at_ms == INTERVAL


@pytest.mark.parametrize(("interval", "rate"), [(0, 1), (1, 0)])
def test_nonsense_settings_are_refused(interval: int, rate: int) -> None:
    with pytest.raises(ValueError):
        CoalescingMachine(interval, rate)
