"""The heartbeat's rules without a clock: active hours, the ack token, durations, zones."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from clawgate.automation.durations import format_duration, parse_duration
from clawgate.automation.heartbeat_rules import ActiveHours, ReplyKind, classify_reply
from clawgate.automation.zones import ZoneError, get_zone, system_zone_name


def test_active_hours_include_the_start_and_exclude_the_end() -> None:
    hours = ActiveHours.parse("08:00-22:00")
    assert hours.contains(time(8, 0)) and hours.contains(time(21, 59))
    assert not hours.contains(time(22, 0)) and not hours.contains(time(7, 59))


def test_active_hours_may_span_midnight() -> None:
    night = ActiveHours.parse("22:00-06:00")
    assert night.contains(time(23, 30)) and night.contains(time(5, 0))
    assert not night.contains(time(12, 0))


def test_active_hours_until_24_00_cover_the_evening() -> None:
    evening = ActiveHours.parse("18:00-24:00")
    assert evening.contains(time(23, 59)) and not evening.contains(time(0, 30))
    assert str(evening) == "18:00-24:00"


@pytest.mark.parametrize("text", ["8-22", "08:00", "25:00-26:00", "08:00-08:00", "08:61-09:00"])
def test_a_malformed_window_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"HH:MM|out of range|empty"):
        ActiveHours.parse(text)


@pytest.mark.parametrize(
    "reply", ["HEARTBEAT_OK", "  HEARTBEAT_OK\n", "**HEARTBEAT_OK**", "HEARTBEAT_OK."]
)
def test_only_the_token_is_an_acknowledgement(reply: str) -> None:
    assert classify_reply(reply, "HEARTBEAT_OK") is ReplyKind.TOKEN


def test_the_token_inside_a_message_is_a_message() -> None:
    reply = "HEARTBEAT_OK, but your 9:00 meeting moved to 10:00"
    assert classify_reply(reply, "HEARTBEAT_OK") is ReplyKind.MESSAGE


def test_a_blank_reply_is_empty() -> None:
    assert classify_reply(" \n", "HEARTBEAT_OK") is ReplyKind.EMPTY


def test_a_configured_token_replaces_the_default() -> None:
    assert classify_reply("ALL_QUIET", "ALL_QUIET") is ReplyKind.TOKEN
    assert classify_reply("HEARTBEAT_OK", "ALL_QUIET") is ReplyKind.MESSAGE


def test_durations_read_units_and_plain_seconds() -> None:
    assert [parse_duration(t) for t in ("30m", "1h30m", "2d", "90s", "45")] == [
        1800,
        5400,
        172800,
        90,
        45,
    ]
    assert [format_duration(s) for s in (1800, 3600, 45, 0)] == ["30m", "1h", "45s", "0s"]


def test_a_malformed_duration_shows_the_accepted_forms() -> None:
    with pytest.raises(ValueError, match=r"write e\.g\. 90s, 30m, 1h30m or 2d"):
        parse_duration("half an hour")


def test_an_unknown_zone_is_a_zone_error() -> None:
    with pytest.raises(ZoneError, match="unknown time zone"):
        get_zone("../etc/passwd")


def test_the_system_zone_comes_from_tz_then_localtime(tmp_path: Path) -> None:
    link = tmp_path / "localtime"
    link.symlink_to("/usr/share/zoneinfo/America/New_York")
    missing = tmp_path / "timezone"
    assert system_zone_name({"TZ": "Europe/Berlin"}, link, missing) == "Europe/Berlin"
    assert system_zone_name({}, link, missing) == "America/New_York"
    assert system_zone_name({"TZ": "Nowhere/Else"}, tmp_path / "none", missing) == "UTC"
