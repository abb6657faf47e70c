"""Human durations as config and the CLI write them: `90s`, `30m`, `1h30m`, `2d`."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["format_duration", "parse_duration"]

_UNITS: Final = {"d": 86_400, "h": 3600, "m": 60, "s": 1}
_PART: Final = re.compile(r"(\d+)([dhms])")
_WHOLE: Final = re.compile(r"(?:\d+[dhms])+")


def parse_duration(text: str) -> int:
    """Return the seconds `text` names: one or more `<number><d|h|m|s>`, or plain seconds.

    Raises:
        ValueError: `text` is not such a duration; the message shows the accepted forms.
    """
    value = text.strip().lower()
    if value.isdigit():
        return int(value)
    if not _WHOLE.fullmatch(value):
        raise ValueError(f"{text!r} is not a duration; write e.g. 90s, 30m, 1h30m or 2d")
    return sum(int(number) * _UNITS[unit] for number, unit in _PART.findall(value))


def format_duration(seconds: int) -> str:
    """Render seconds the way OpenClaw shows an interval: `30m`, `1h`, `45s`, `90m`."""
    if seconds and seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds and seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"
