"""The figures every channel phase reports: echo round trips, and a burst's count of replies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from .report import Figure, Target, median, percentile

__all__ = ["BURST_TARGET_S", "ECHO_TARGET_MS", "burst_figures", "echo_figures", "tally_burst"]

#: Issue 13/19: an inbound message answered by the echo agent within 20 ms (p50).
ECHO_TARGET_MS: Final = 20
#: A 1,000-message burst fully answered within 10 s.
BURST_TARGET_S: Final = 10


def echo_figures(
    channel: str,
    samples: Sequence[float],
    baseline: Sequence[float],
    note: str,
    *,
    target: bool = True,
) -> list[Figure]:
    """Return `<channel>_echo_p50` (with the target unless `target` is false) and `_p99`."""
    return [
        Figure(
            f"{channel}_echo_p50",
            median(samples),
            "ms",
            baseline=median(baseline),
            target=Target("<", ECHO_TARGET_MS) if target else None,
            note=note,
        ),
        Figure(
            f"{channel}_echo_p99",
            percentile(samples, 0.99),
            "ms",
            baseline=percentile(baseline, 0.99),
        ),
    ]


def tally_burst(markers: Sequence[str], replies: Iterable[str]) -> tuple[int, int]:
    """Return (answered twice or more, never answered) for a burst's markers.

    A reply counts for the marker it echoes (the word after its last "go "); other replies
    are not counted.
    """
    counts = dict.fromkeys(markers, 0)
    for text in replies:
        words = text.rsplit("go ", 1)[-1].split()
        if words and words[0] in counts:
            counts[words[0]] += 1
    duplicates = sum(max(count - 1, 0) for count in counts.values())
    lost = sum(1 for count in counts.values() if count == 0)
    return duplicates, lost


def burst_figures(
    channel: str, size: int, elapsed_s: float, duplicates: int, lost: int, note: str
) -> list[Figure]:
    """Return `<channel>_burst_<size>` (seconds until all were answered), its duplicates, lost."""
    return [
        Figure(
            f"{channel}_burst_{size}",
            elapsed_s,
            "s",
            target=Target("<", BURST_TARGET_S),
            note=f"{note}; {duplicates} answered twice, {lost} unanswered",
        ),
        Figure(f"{channel}_burst_duplicates", duplicates, "msgs", target=Target("<", 1)),
        Figure(f"{channel}_burst_lost", lost, "msgs", target=Target("<", 1)),
    ]
