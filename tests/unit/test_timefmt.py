"""RFC 3339 times: one written form (UTC, milliseconds, Z), any zone read back."""

from __future__ import annotations

import pytest

from clawgate.protocol.timefmt import format_time, format_time_ms, parse_time

T0 = 1_795_000_000.123


def test_format_time_writes_utc_with_milliseconds_and_z() -> None:
    assert format_time(1_795_465_025.123) == "2026-11-23T20:17:05.123Z"


def test_format_time_keeps_three_digits_on_a_whole_second() -> None:
    assert format_time(0) == "1970-01-01T00:00:00.000Z"


def test_format_time_truncates_below_a_millisecond() -> None:
    assert format_time(1_795_465_025.1239) == "2026-11-23T20:17:05.123Z"


def test_format_time_ms_matches_format_time_of_the_same_moment() -> None:
    assert format_time_ms(1_795_465_025_123) == "2026-11-23T20:17:05.123Z"
    assert format_time_ms(0) == format_time(0)


def test_format_time_ms_is_exact_for_every_millisecond_of_a_second() -> None:
    base = 1_795_465_025_000
    stamps = [format_time_ms(base + ms) for ms in range(1000)]
    assert [stamp[-4:-1] for stamp in stamps] == [f"{ms:03d}" for ms in range(1000)]


def test_time_round_trips_with_milliseconds() -> None:
    assert parse_time(format_time(T0)) == pytest.approx(T0, abs=0.001)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2026-11-23T20:17:05.123Z", 1_795_465_025.123),
        ("2026-11-23t20:17:05.123z", 1_795_465_025.123),
        ("2026-11-23T22:17:05.123+02:00", 1_795_465_025.123),
        ("2026-11-23T20:17:05Z", 1_795_465_025.0),
    ],
)
def test_parse_time_reads_any_zone_in_either_case(text: str, seconds: float) -> None:
    assert parse_time(text) == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize("text", ["2026-11-17", "2026-11-17T05:46:40", "yesterday", ""])
def test_parse_time_refuses_a_date_or_a_time_without_zone(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)
