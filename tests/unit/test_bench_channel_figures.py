"""The burst tally every channel benchmark relies on for its 0 lost, 0 duplicates."""

from __future__ import annotations

from bench.channel_figures import tally_burst


def test_each_marker_answered_once_is_neither_lost_nor_duplicated() -> None:
    assert tally_burst(["burst-0", "burst-1"], ["go burst-0", "go burst-1"]) == (0, 0)


def test_a_marker_answered_twice_and_one_never_answered_are_both_counted() -> None:
    replies = ["go burst-0", "echo: go burst-0", "go burst-2"]
    assert tally_burst(["burst-0", "burst-1", "burst-2"], replies) == (1, 1)


def test_replies_that_echo_no_marker_are_not_counted() -> None:
    assert tally_burst(["burst-0"], ["", "hello there", "go burst-0", "go elsewhere"]) == (0, 0)
