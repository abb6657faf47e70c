"""Cron schedules without a clock: next runs in their zone, across DST in Berlin and New York."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clawgate.automation.schedule import (
    AtSchedule,
    CronSchedule,
    EverySchedule,
    ScheduleError,
    local_to_ms,
    parse_schedule,
)
from clawgate.automation.zones import to_ms, wall_time

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


def utc(*parts: int) -> int:
    return to_ms(datetime(*parts, tzinfo=UTC))  # type: ignore[misc]


def runs(expr: str, tz: str, after: int, count: int) -> list[str]:
    """The next `count` runs after `after`, as local ISO times with their offset."""
    schedule = CronSchedule.parse(expr, tz)
    out = []
    for _ in range(count):
        next_run = schedule.next_after(after)
        assert next_run is not None and next_run > after
        out.append(wall_time(next_run, tz).isoformat(timespec="minutes"))
        after = next_run
    return out


# -- spring forward: the wall clock skips an hour ------------------------------------------


def test_berlin_0230_runs_once_at_0300_on_the_spring_forward_day() -> None:
    # 2026-03-29: Berlin jumps from 02:00 CET to 03:00 CEST; 02:30 does not exist.
    assert runs("30 2 * * *", BERLIN, utc(2026, 3, 27, 12), 3) == [
        "2026-03-28T02:30+01:00",
        "2026-03-29T03:00+02:00",
        "2026-03-30T02:30+02:00",
    ]


def test_new_york_0230_runs_once_at_0300_on_the_spring_forward_day() -> None:
    # 2026-03-08: New York jumps from 02:00 EST to 03:00 EDT.
    assert runs("30 2 * * *", NEW_YORK, utc(2026, 3, 7, 12), 3) == [
        "2026-03-08T03:00-04:00",
        "2026-03-09T02:30-04:00",
        "2026-03-10T02:30-04:00",
    ]


def test_two_skipped_times_of_one_job_still_run_once() -> None:
    assert runs("0,30 2 * * *", BERLIN, utc(2026, 3, 28, 12), 2) == [
        "2026-03-29T03:00+02:00",
        "2026-03-30T02:00+02:00",
    ]


def test_a_wildcard_job_skips_the_missing_hour_and_keeps_its_spacing() -> None:
    assert runs("*/30 * * * *", BERLIN, utc(2026, 3, 29, 0), 3) == [
        "2026-03-29T01:30+01:00",
        "2026-03-29T03:00+02:00",
        "2026-03-29T03:30+02:00",
    ]


# -- fall back: the wall clock repeats an hour ----------------------------------------------


def test_berlin_0230_runs_once_on_the_fall_back_day() -> None:
    # 2026-10-25: Berlin goes from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
    assert runs("30 2 * * *", BERLIN, utc(2026, 10, 24, 12), 2) == [
        "2026-10-25T02:30+02:00",
        "2026-10-26T02:30+01:00",
    ]


def test_new_york_0130_runs_once_on_the_fall_back_day() -> None:
    # 2026-11-01: New York goes from 02:00 EDT back to 01:00 EST.
    assert runs("30 1 * * *", NEW_YORK, utc(2026, 11, 1, 4), 2) == [
        "2026-11-01T01:30-04:00",
        "2026-11-02T01:30-05:00",
    ]


def test_a_fixed_job_due_in_the_second_pass_of_the_hour_waits_for_the_next_day() -> None:
    # 02:10 CET, in the repeated hour, after 02:30 CEST already ran.
    after = local_to_ms(datetime(2026, 10, 25, 2, 10), BERLIN) + 3600_000
    assert wall_time(after, BERLIN).isoformat(timespec="minutes") == "2026-10-25T02:10+01:00"
    assert runs("30 2 * * *", BERLIN, after, 1) == ["2026-10-26T02:30+01:00"]


def test_a_wildcard_job_runs_through_the_repeated_hour_again() -> None:
    assert runs("*/30 * * * *", BERLIN, utc(2026, 10, 24, 23), 6) == [
        "2026-10-25T01:30+02:00",
        "2026-10-25T02:00+02:00",
        "2026-10-25T02:30+02:00",
        "2026-10-25T02:00+01:00",
        "2026-10-25T02:30+01:00",
        "2026-10-25T03:00+01:00",
    ]


def test_a_wildcard_job_checked_inside_the_first_pass_still_sees_the_second() -> None:
    after = utc(2026, 10, 25, 0, 50)  # 02:50 CEST, first pass of the repeated hour
    assert runs("*/30 * * * *", BERLIN, after, 2) == [
        "2026-10-25T02:00+01:00",
        "2026-10-25T02:30+01:00",
    ]


def test_new_york_hourly_runs_in_both_passes_of_the_repeated_hour() -> None:
    assert runs("@hourly", NEW_YORK, utc(2026, 11, 1, 4, 30), 3) == [
        "2026-11-01T01:00-04:00",
        "2026-11-01T01:00-05:00",
        "2026-11-01T02:00-05:00",
    ]


# -- zones, fields and mistakes --------------------------------------------------------------


def test_the_same_expression_runs_at_the_wall_time_of_each_zone() -> None:
    after = utc(2026, 7, 1, 0)
    berlin = CronSchedule.parse("0 8 * * *", BERLIN).next_after(after)
    new_york = CronSchedule.parse("0 8 * * *", NEW_YORK).next_after(after)
    assert berlin == utc(2026, 7, 1, 6)
    assert new_york == utc(2026, 7, 1, 12)


def test_weekday_mornings_skip_the_weekend() -> None:
    # 2026-03-27 is a Friday.
    assert runs("0 8 * * 1-5", BERLIN, utc(2026, 3, 27, 12), 2) == [
        "2026-03-30T08:00+02:00",
        "2026-03-31T08:00+02:00",
    ]


def test_six_fields_put_seconds_first() -> None:
    schedule = CronSchedule.parse("15 0 8 * * *", BERLIN)
    assert schedule.next_after(utc(2026, 7, 1, 0)) == utc(2026, 7, 1, 6, 0, 15)


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("0 8 * *", "has 4 fields"),
        ("0 8 * * * * *", "has 7 fields"),
        ("0 25 * * *", "out of range"),
        ("0 0 30 2 *", "never matches a real date"),
        ("every morning", "has 2 fields"),
        ("@reboot", "use an `at` schedule"),
    ],
)
def test_a_malformed_expression_says_what_is_wrong(expr: str, says: str) -> None:
    with pytest.raises(ScheduleError, match=says):
        CronSchedule.parse(expr, BERLIN)


def test_an_unknown_zone_is_refused_with_an_example() -> None:
    with pytest.raises(ScheduleError, match=r"unknown time zone 'Europe/Atlantis'.*IANA"):
        CronSchedule.parse("0 8 * * *", "Europe/Atlantis")


def test_a_cron_schedule_without_a_zone_takes_the_default() -> None:
    schedule = parse_schedule(
        {"kind": "cron", "expr": "0 8 * * *"}, default_tz=NEW_YORK, anchor_ms=0
    )
    assert schedule.wire() == {"kind": "cron", "expr": "0 8 * * *", "tz": NEW_YORK}


def test_every_counts_from_its_anchor_in_elapsed_time() -> None:
    schedule = EverySchedule(every_ms=3_600_000, anchor_ms=utc(2026, 3, 29, 0, 30))
    # Across Berlin's spring-forward night the interval stays one real hour.
    assert schedule.next_after(utc(2026, 3, 29, 0, 30)) == utc(2026, 3, 29, 1, 30)
    assert schedule.next_after(utc(2026, 3, 29, 1, 45)) == utc(2026, 3, 29, 2, 30)
    assert schedule.next_after(utc(2026, 3, 28)) == utc(2026, 3, 29, 0, 30)


def test_at_runs_once_then_never() -> None:
    schedule = AtSchedule(utc(2026, 12, 24, 17))
    assert schedule.next_after(utc(2026, 12, 24)) == utc(2026, 12, 24, 17)
    assert schedule.next_after(utc(2026, 12, 24, 17)) is None


def test_every_refuses_intervals_under_a_second() -> None:
    with pytest.raises(ScheduleError, match="everyMs must be between 1000"):
        parse_schedule({"kind": "every", "everyMs": 10}, default_tz=BERLIN, anchor_ms=0)


def test_a_local_time_in_the_spring_gap_is_refused() -> None:
    with pytest.raises(ScheduleError, match="does not exist in Europe/Berlin"):
        local_to_ms(datetime(2026, 3, 29, 2, 30), BERLIN)


def test_an_ambiguous_local_time_means_its_first_occurrence() -> None:
    assert local_to_ms(datetime(2026, 10, 25, 2, 30), BERLIN) == utc(2026, 10, 25, 0, 30)


@given(
    after=st.integers(min_value=utc(2026, 1, 1), max_value=utc(2028, 1, 1)),
    minute=st.integers(0, 59),
    hour=st.integers(0, 23),
    zone=st.sampled_from([BERLIN, NEW_YORK, "UTC", "Australia/Lord_Howe", "Asia/Kolkata"]),
)
def test_a_fixed_job_runs_once_a_day_at_its_wall_time_or_just_after_a_gap(
    after: int, minute: int, hour: int, zone: str
) -> None:
    schedule = CronSchedule.parse(f"{minute} {hour} * * *", zone)
    first = schedule.next_after(after)
    assert first is not None and first > after
    second = schedule.next_after(first)
    assert second is not None
    # One run per calendar day: never two on one local date, never a day left out.
    day_one, day_two = wall_time(first, zone).date(), wall_time(second, zone).date()
    assert (day_two - day_one).days == 1
    wall = wall_time(first, zone)
    on_time = (wall.hour, wall.minute) == (hour, minute)
    # Off its wall time only when that time did not exist that day (a DST gap).
    assert on_time or (wall.hour, wall.minute) > (hour, minute)


def _field(draw: st.DrawFn, low: int, high: int) -> str:
    kind = draw(st.sampled_from(["*", "step", "one", "range", "list", "range-step"]))
    a = draw(st.integers(low, high))
    b = draw(st.integers(a, high))
    k = draw(st.integers(1, max(1, (high - low) // 2)))
    return {
        "*": "*",
        "step": f"*/{k}",
        "one": str(a),
        "range": f"{a}-{b}",
        "list": f"{a},{b}",
        "range-step": f"{a}-{b}/{k}",
    }[kind]


@st.composite
def expressions(draw: st.DrawFn) -> str:
    fields = [
        _field(draw, 0, 59),
        _field(draw, 0, 23),
        draw(st.sampled_from(["*", "L", "1,L"])) if draw(st.booleans()) else _field(draw, 1, 28),
        _field(draw, 1, 12),
        _field(draw, 0, 6),
    ]
    if draw(st.booleans()):
        fields.insert(0, _field(draw, 0, 59))
    return " ".join(fields)


@given(
    expr=expressions(),
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31)),
)
def test_the_field_walker_agrees_with_croniter(expr: str, start: datetime) -> None:
    from croniter import croniter

    from clawgate.automation.schedule import _stepper

    seconds = len(expr.split()) == 6
    reference = croniter(expr, start, second_at_beginning=seconds)
    ours = _stepper(expr, seconds)
    moment = start
    for _ in range(3):
        expected = reference.get_next(datetime)
        moment_next = ours(moment)
        assert moment_next == expected, (expr, moment)
        moment = expected
