"""When a cron job runs next: `at`, `every` and `cron` schedules (pure: time is passed in).

All instants are Unix milliseconds. `next_after(t)` returns the first run strictly after
`t`, or None when there is none (an `at` in the past, an expression that never matches).

- `at`: once, at `atMs`.
- `every`: `anchorMs + k * everyMs` for k >= 0, in elapsed time: time zones and daylight
  saving do not move it.
- `cron`: 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first
  (as OpenClaw's croner reads them), matched against the wall clock of the job's IANA zone.
  Daylight-saving transitions follow Vixie cron, which is what cron users expect:

  * A *fixed-time* job (no `*` starting its minute or hour field, e.g. `30 2 * * *`) whose
    wall time is skipped by a spring-forward transition runs once, at the transition
    (02:30 on the day Berlin jumps from 02:00 to 03:00 runs at 03:00 CEST). Several
    skipped times of one job (`0,30 2 * * *`) still run once. A fixed-time wall time
    that a fall-back transition repeats runs once, at its first occurrence.
  * A *wildcard* job (`*` in its minute or hour field, e.g. `*/15 * * * *` or `@hourly`)
    follows the wall clock as it is: nothing runs at skipped wall times, and the repeated
    hour is run through again, so its runs stay evenly spaced in elapsed time.

croniter parses and walks the expressions; it is imported on first use, so a gateway with
no cron-kind job never loads it.
"""

from __future__ import annotations

import sys
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from ..protocol.limits import CRON_EVERY_MAX_MS as EVERY_MAX_MS
from ..protocol.limits import CRON_EVERY_MIN_MS as EVERY_MIN_MS
from .zones import ZoneError, from_ms, get_zone, to_ms

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

__all__ = [
    "AtSchedule",
    "CronSchedule",
    "EverySchedule",
    "Schedule",
    "ScheduleError",
    "ScheduleKind",
    "local_to_ms",
    "parse_schedule",
]

_MS: Final = timedelta(milliseconds=1)
#: Candidates examined for one `next_after` before giving up (a wildcard job that runs every
#: second needs 3600 to cross a one-hour gap).
_MAX_CANDIDATES: Final = 5000
_ALIASES: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(ValueError):
    """A schedule cannot be used; the message says what is wrong and how to write it."""


class ScheduleKind(StrEnum):
    """The three kinds of schedule (spec §10.8)."""

    AT = "at"
    EVERY = "every"
    CRON = "cron"


def local_to_ms(local: datetime, zone_name: str) -> int:
    """Return the instant a naive wall time in `zone_name` names.

    An ambiguous wall time (repeated at fall-back) means its first occurrence.

    Raises:
        ScheduleError: the wall time does not exist there (skipped at spring-forward).
        ZoneError: unknown zone.
    """
    zone = get_zone(zone_name)
    kind, instants = _instants_of(local.replace(tzinfo=None), zone)
    if kind is _Wall.GAP:
        raise ScheduleError(
            f"{local:%Y-%m-%d %H:%M} does not exist in {zone_name}: the clocks skip it when "
            "daylight saving time starts; pick a time outside that hour"
        )
    return instants[0]


@dataclass(frozen=True, slots=True)
class AtSchedule:
    """Run once at `at_ms`."""

    at_ms: int

    kind = ScheduleKind.AT

    def next_after(self, after_ms: int) -> int | None:
        """Return `at_ms` if it is after `after_ms`, else None."""
        return self.at_ms if self.at_ms > after_ms else None

    def wire(self) -> dict[str, Any]:
        """Return the wire form."""
        return {"kind": "at", "atMs": self.at_ms}


@dataclass(frozen=True, slots=True)
class EverySchedule:
    """Run every `every_ms`, counted from `anchor_ms`."""

    every_ms: int
    anchor_ms: int

    kind = ScheduleKind.EVERY

    def next_after(self, after_ms: int) -> int:
        """Return the first `anchor + k * every` (k >= 0) after `after_ms`."""
        if self.anchor_ms > after_ms:
            return self.anchor_ms
        steps = (after_ms - self.anchor_ms) // self.every_ms + 1
        return self.anchor_ms + steps * self.every_ms

    def wire(self) -> dict[str, Any]:
        """Return the wire form."""
        return {"kind": "every", "everyMs": self.every_ms, "anchorMs": self.anchor_ms}


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """Run when the wall clock of `tz` matches `expr`."""

    expr: str
    tz: str
    # The expression croniter walks (aliases expanded) and whether it has a seconds field.
    _walked: str
    _seconds: bool
    # Whether the minute and hour are fixed, which decides the DST rule (module docstring).
    fixed_time: bool

    kind = ScheduleKind.CRON

    @classmethod
    def parse(cls, expr: str, tz: str, *, check: bool = True) -> CronSchedule:
        """Check `expr` and `tz` and return the schedule.

        `check=False` skips walking the expression, for jobs read back from state.db that
        were checked when they were saved (croniter is then loaded only to run them).

        Raises:
            ScheduleError: the expression is malformed, or the zone is unknown.
        """
        text = " ".join(expr.split())
        walked = _ALIASES.get(text.lower(), text)
        fields = walked.split()
        if text.lower() == "@reboot":
            raise ScheduleError("@reboot is not a schedule here; use an `at` schedule instead")
        if len(fields) not in (5, 6):
            raise ScheduleError(
                f"cron expression {expr!r} has {len(fields)} fields; write 5 (minute hour "
                "day-of-month month day-of-week) or 6 with seconds first, e.g. '0 8 * * 1-5'"
            )
        seconds = len(fields) == 6
        minute, hour = (fields[1], fields[2]) if seconds else (fields[0], fields[1])
        try:
            get_zone(tz)
        except ZoneError as exc:
            raise ScheduleError(str(exc)) from None
        if check:
            try:
                _expand(walked, seconds)
            except ValueError as exc:
                raise ScheduleError(f"cron expression {expr!r} is not valid: {exc}") from None
        fixed = not (minute.startswith("*") or hour.startswith("*"))
        # Interned: thousands of jobs share a handful of zones and expressions.
        return cls(sys.intern(text), sys.intern(tz), sys.intern(walked), seconds, fixed)

    def wire(self) -> dict[str, Any]:
        """Return the wire form."""
        return {"kind": "cron", "expr": self.expr, "tz": self.tz}

    def next_after(self, after_ms: int) -> int | None:
        """Return the first run after `after_ms` by the DST rules above, or None."""
        zone = get_zone(self.tz)
        local = from_ms(after_ms, zone)
        start = local.replace(tzinfo=None, microsecond=0)
        if not self.fixed_time and local.fold == 0 and _is_ambiguous(local):
            # `after` is in the first pass of a repeated hour: the second pass of the wall
            # times already behind us is still ahead in real time, so walk from its start.
            start = _repeat_start(after_ms, zone) - timedelta(seconds=1)
        step = _stepper(self._walked, self._seconds)
        best: int | None = None
        candidate: datetime | None = start
        for _ in range(_MAX_CANDIDATES):
            assert candidate is not None
            candidate = step(candidate)
            if candidate is None:
                return best
            kind, instants = _instants_of(candidate, zone)
            if kind is _Wall.GAP:
                floor = instants[0]  # the transition: no later wall time runs before it
                runs = instants if self.fixed_time else []
            elif kind is _Wall.AMBIGUOUS:
                floor = instants[0]
                runs = instants[:1] if self.fixed_time else instants
            else:
                floor = instants[0]
                runs = instants
            for run in runs:
                if run > after_ms and (best is None or run < best):
                    best = run
            # Every later wall time maps to an instant at or after this one's earliest.
            if best is not None and floor >= best:
                return best
        return best


Schedule = AtSchedule | EverySchedule | CronSchedule


def parse_schedule(
    wire: dict[str, Any], *, default_tz: str, anchor_ms: int, check: bool = True
) -> Schedule:
    """Return the schedule a wire `schedule` object describes.

    A `cron` schedule without `tz` gets `default_tz`; an `every` without `anchorMs` counts
    from `anchor_ms`. `check=False` trusts a cron expression read back from state.db.

    Raises:
        ScheduleError: unknown kind, a bad interval, a malformed expression, an unknown zone.
    """
    kind = wire.get("kind")
    if kind == ScheduleKind.AT:
        at_ms = wire.get("atMs")
        if not isinstance(at_ms, int) or isinstance(at_ms, bool) or at_ms < 0:
            raise ScheduleError("an `at` schedule needs atMs, a time in Unix milliseconds")
        return AtSchedule(at_ms)
    if kind == ScheduleKind.EVERY:
        every_ms = wire.get("everyMs")
        if not isinstance(every_ms, int) or not EVERY_MIN_MS <= every_ms <= EVERY_MAX_MS:
            raise ScheduleError(
                f"everyMs must be between {EVERY_MIN_MS} (1 s) and {EVERY_MAX_MS} (366 days)"
            )
        anchor = wire.get("anchorMs")
        return EverySchedule(every_ms, anchor_ms if anchor is None else int(anchor))
    if kind == ScheduleKind.CRON:
        expr = wire.get("expr")
        if not isinstance(expr, str) or not expr.strip():
            raise ScheduleError("a `cron` schedule needs expr, e.g. '0 8 * * 1-5'")
        tz = wire.get("tz") or default_tz
        return CronSchedule.parse(expr, tz, check=check)
    raise ScheduleError(f"unknown schedule kind {kind!r}; use at, every or cron")


# -- wall times and instants ------------------------------------------------------------


class _Wall(StrEnum):
    NORMAL = "normal"
    AMBIGUOUS = "ambiguous"  # repeated by a fall-back transition: two instants
    GAP = "gap"  # skipped by a spring-forward transition: no instant of its own


def _instants_of(wall: datetime, zone: ZoneInfo) -> tuple[_Wall, list[int]]:
    """Classify a naive wall time in `zone` and return its instants, earliest first.

    For a skipped wall time the one instant returned is the transition itself.
    """
    first = to_ms(wall.replace(tzinfo=zone, fold=0))
    second = to_ms(wall.replace(tzinfo=zone, fold=1))
    if first == second:
        return _Wall.NORMAL, [first]
    if from_ms(first, zone).replace(tzinfo=None) == wall:
        return _Wall.AMBIGUOUS, sorted((first, second))
    # In a gap fold=0 applies the offset before the jump and fold=1 the one after, so the
    # transition lies in (second, first]: find the first instant with the new offset.
    return _Wall.GAP, [_transition(second, first, zone)]


def _is_ambiguous(local: datetime) -> bool:
    return local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()


def _transition(low_ms: int, high_ms: int, zone: ZoneInfo) -> int:
    """Return the first instant in (low, high] whose UTC offset differs from low's."""
    before = from_ms(low_ms, zone).utcoffset()
    while high_ms - low_ms > 1:
        middle = (low_ms + high_ms) // 2
        if from_ms(middle, zone).utcoffset() == before:
            low_ms = middle
        else:
            high_ms = middle
    return high_ms


def _repeat_start(after_ms: int, zone: ZoneInfo) -> datetime:
    """Return the naive wall time at which the repeated hour containing `after_ms` begins."""
    local = from_ms(after_ms, zone)
    offset_now = local.utcoffset()
    offset_after = local.replace(fold=1).utcoffset()
    assert offset_now is not None and offset_after is not None
    shift = (offset_now - offset_after) // _MS
    moment = _transition(after_ms, after_ms + shift, zone)
    return from_ms(moment, zone).replace(tzinfo=None)


# -- croniter, imported on first use ------------------------------------------------------


def _expand(expr: str, seconds: bool) -> None:
    from croniter import CroniterBadDateError, CroniterError, croniter

    try:
        croniter.expand(expr, second_at_beginning=seconds)
        # An expression that never matches (30 February) fails here, not at its first run.
        croniter(expr, datetime(2000, 1, 1), second_at_beginning=seconds).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError("it never matches a real date (such as 30 February)") from None
    except CroniterError as exc:
        message = str(exc) or type(exc).__name__
        raise ValueError(message.replace("[", "'").replace("]", "'")) from None


@lru_cache(maxsize=1024)
def _stepper(expr: str, seconds: bool) -> Callable[[datetime], datetime | None]:
    """Return a function giving the first naive wall time after a naive wall time.

    croniter parses the expression (names, ranges, steps, `L`) into the values each field
    allows; walking those values is done here, which is some fifty times faster than
    croniter's own walk (a due pass computes a thousand next runs at once). Expressions
    with `#` (nth weekday of the month) are walked by croniter itself.
    """
    from croniter import croniter

    fields, nth_weekday = croniter.expand(expr, second_at_beginning=seconds)
    if nth_weekday:
        return _croniter_stepper(expr, seconds)
    return _FieldWalker(fields, seconds).next_after


def _croniter_stepper(expr: str, seconds: bool) -> Callable[[datetime], datetime | None]:
    from croniter import CroniterError, croniter

    iterator = croniter(expr, datetime(2000, 1, 1), second_at_beginning=seconds)

    def step(after: datetime) -> datetime | None:
        iterator.set_current(after, force=True)  # one event loop: sharing it is safe
        try:
            found: datetime = iterator.get_next(datetime)
        except CroniterError:
            return None
        return found

    return step


#: Days walked before an expression is taken never to match again (croniter gives up too).
_MAX_DAYS: Final = 366 * 50
_ONE_DAY: Final = timedelta(days=1)


def _values(field: list[Any], low: int, high: int) -> list[int]:
    if field == ["*"]:
        return list(range(low, high + 1))
    return sorted({int(value) for value in field if value != "l"})


class _FieldWalker:
    """The next time the expanded fields of a cron expression allow, after a given time.

    Day of month and day of week combine as in Vixie cron (and croniter): when both are
    restricted, a day matching either runs.
    """

    def __init__(self, fields: list[list[Any]], seconds: bool) -> None:
        minute, hour, dom, month, dow = fields[:5]
        self.seconds = _values(fields[5], 0, 59) if seconds else [0]
        self.minutes = _values(minute, 0, 59)
        self.hours = _values(hour, 0, 23)
        self.months = frozenset(_values(month, 1, 12))
        self.dom_any = dom == ["*"]
        self.dow_any = dow == ["*"]
        self.doms = frozenset(_values(dom, 1, 31)) if not self.dom_any else frozenset()
        self.last_dom = "l" in dom
        self.dows = (
            frozenset(v % 7 for v in _values(dow, 0, 7)) if not self.dow_any else frozenset()
        )
        self.step = timedelta(seconds=1) if seconds else timedelta(minutes=1)

    def _day_ok(self, day: datetime) -> bool:
        if self.dom_any and self.dow_any:
            return True
        dom_ok = day.day in self.doms or (self.last_dom and (day + _ONE_DAY).month != day.month)
        dow_ok = day.isoweekday() % 7 in self.dows
        if self.dom_any:
            return dow_ok
        if self.dow_any:
            return dom_ok
        return dom_ok or dow_ok

    def next_after(self, after: datetime) -> datetime | None:
        """Return the first allowed time strictly after `after` (naive), or None."""
        start = after.replace(microsecond=0)
        if self.step.seconds == 60:
            start = start.replace(second=0)
        moment = start + self.step
        day = moment.replace(hour=0, minute=0, second=0)
        first = True
        for _ in range(_MAX_DAYS):
            if day.month not in self.months:
                day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
                first = False
                continue
            if not self._day_ok(day):
                day += _ONE_DAY
                first = False
                continue
            found = self._in_day(day, moment if first else day)
            if found is not None:
                return found
            day += _ONE_DAY
            first = False
        return None

    def _in_day(self, day: datetime, since: datetime) -> datetime | None:
        """Return the first allowed time of `day` at or after `since`, or None."""
        for hour in self.hours[bisect_left(self.hours, since.hour) :]:
            minute_from = since.minute if hour == since.hour else 0
            for minute in self.minutes[bisect_left(self.minutes, minute_from) :]:
                second_from = since.second if (hour, minute) == (since.hour, since.minute) else 0
                index = bisect_left(self.seconds, second_from)
                if index < len(self.seconds):
                    return day.replace(hour=hour, minute=minute, second=self.seconds[index])
        return None
