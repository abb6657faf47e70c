"""The pure `sessions.usage` window and report (agents/usage.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from clawgate.agents.usage import resolve_window, usage_report
from clawgate.store.sessions_repo import SessionRecord

NOW = int(datetime(2026, 3, 10, 12, tzinfo=UTC).timestamp() * 1000)


def test_no_dates_mean_the_last_thirty_days_ending_today() -> None:
    window = resolve_window(start_date=None, end_date=None, range_=None, zone=UTC, now_ms=NOW)
    assert (window.day(window.start_ms), window.day(window.end_ms)) == ("2026-02-09", "2026-03-10")


def test_explicit_days_are_whole_days_in_the_requested_zone() -> None:
    zone = ZoneInfo("America/New_York")
    window = resolve_window(
        start_date="2026-03-09", end_date="2026-03-09", range_=None, zone=zone, now_ms=NOW
    )
    assert window.start_ms == int(datetime(2026, 3, 9, tzinfo=zone).timestamp() * 1000)
    assert window.end_ms == int(datetime(2026, 3, 10, tzinfo=zone).timestamp() * 1000) - 1


def test_one_date_without_the_other_is_refused() -> None:
    with pytest.raises(ValueError, match="together"):
        resolve_window(start_date="2026-03-09", end_date=None, range_=None, zone=UTC, now_ms=NOW)


def test_messages_are_counted_per_role_and_day_with_zero_tokens() -> None:
    record = SessionRecord("agent:main:main", "s1", "main", None, None, NOW, NOW, 3)
    window = resolve_window(start_date=None, end_date=None, range_="7d", zone=UTC, now_ms=NOW)
    day = 86_400_000
    times = [("s1", "user", NOW - day), ("s1", "assistant", NOW - day + 5), ("s1", "user", NOW)]
    report = usage_report([record], times, window, now_ms=NOW, limit=50)
    usage = report["sessions"][0]["usage"]
    assert usage["messageCounts"]["user"] == 2 and usage["messageCounts"]["assistant"] == 1
    assert [d["total"] for d in usage["dailyMessageCounts"]] == [2, 1]
    assert usage["durationMs"] == day and usage["totalTokens"] == 0
    assert report["aggregates"]["sessionCount"] == 1
