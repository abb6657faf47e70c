"""IANA time zones: look one up by name, and find the name of the system's own zone."""

from __future__ import annotations

import contextlib
import os
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Final

__all__ = [
    "UTC_NAME",
    "ZoneError",
    "from_ms",
    "get_zone",
    "system_zone_name",
    "to_ms",
    "wall_time",
]

UTC_NAME: Final = "UTC"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_LOCALTIME: Final = Path("/etc/localtime")
_TIMEZONE_FILE: Final = Path("/etc/timezone")


class ZoneError(ValueError):
    """A time zone name is not a known IANA zone; the message says what to write instead."""


@lru_cache(maxsize=512)
def get_zone(name: str) -> zoneinfo.ZoneInfo:
    """Return the IANA zone `name` (e.g. `Europe/Berlin`).

    Raises:
        ZoneError: no such zone in the system's (or the `tzdata` package's) zone database.
    """
    if not name or name != name.strip() or name.startswith(("/", ".")) or ".." in name:
        raise ZoneError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ZoneError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or "
            "America/New_York (see `timedatectl list-timezones`)"
        ) from None


def system_zone_name(
    environ: Mapping[str, str] | None = None,
    localtime: Path = _LOCALTIME,
    timezone_file: Path = _TIMEZONE_FILE,
) -> str:
    """Return the IANA name of the machine's zone: `$TZ`, then /etc/localtime, else UTC."""
    env = os.environ if environ is None else environ
    candidates: list[str] = []
    tz = env.get("TZ", "").lstrip(":")
    if tz:
        candidates.append(tz)
    try:
        target = os.readlink(localtime)
    except OSError:
        pass
    else:
        marker = "zoneinfo/"
        if marker in target:
            candidates.append(target.split(marker, 1)[1])
    with contextlib.suppress(OSError):
        candidates.append(timezone_file.read_text(encoding="utf-8").strip())
    for name in candidates:
        try:
            get_zone(name)
        except ZoneError:
            continue
        return name
    return UTC_NAME


def to_ms(moment: datetime) -> int:
    """Return an aware datetime as Unix milliseconds, exactly (no float rounding)."""
    return (moment - _EPOCH) // _MS


def from_ms(ms: int, zone: zoneinfo.ZoneInfo) -> datetime:
    """Return Unix milliseconds as an aware datetime in `zone` (its `fold` set right)."""
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(zone)


def wall_time(ms: int, zone_name: str) -> datetime:
    """Return the instant `ms` as an aware datetime on the wall clock of `zone_name`."""
    return from_ms(ms, get_zone(zone_name))
