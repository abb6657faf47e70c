"""RFC 3339 times as the wire and the stores write them: UTC, milliseconds, a ``Z``.

Every time clawgate writes is ``2026-11-23T20:17:05.123Z``: always UTC, always three digits of
milliseconds, truncated rather than rounded (a time is never written later than it happened).
Readers accept any RFC 3339 time with a zone, in either case, and return epoch seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_time", "format_time_ms", "parse_time"]


def format_time(seconds: float) -> str:
    """Return ``seconds`` since the epoch as an RFC 3339 UTC time with milliseconds."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def format_time_ms(ms: int) -> str:
    """Return epoch milliseconds as an RFC 3339 UTC time with milliseconds."""
    return format_time(ms / 1000)


def parse_time(text: str) -> float:
    """Return an RFC 3339 time as seconds since the epoch.

    Raises:
        ValueError: ``text`` is not an RFC 3339 time with a zone.
    """
    if "T" not in text.upper():
        raise ValueError("must be an RFC 3339 time such as 2026-11-23T20:17:05.123Z")
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError("must be an RFC 3339 time with a zone (Z or +hh:mm)")
    return moment.timestamp()
