"""The `sessions.usage` report in OpenClaw 2026.9.6's shape, from clawgate's own records.

Pure: the caller passes the sessions, the `(session_id, role, ts)` of the messages stored in
the window, the window and the time. clawgate's backends report no token counts or costs, so
every token and cost figure is 0; message counts, activity days and durations are real.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from ..store.sessions_repo import SessionRecord

__all__ = ["UsageWindow", "resolve_window", "usage_report"]

DEFAULT_DAYS = 30
_RANGE_DAYS = {"7d": 7, "30d": 30, "90d": 90, "1y": 365}

UsageRange = Literal["7d", "30d", "90d", "1y", "all"]


@dataclass(frozen=True, slots=True)
class UsageWindow:
    """Inclusive `[start_ms, end_ms]` and the zone whose calendar days it reports in."""

    start_ms: int
    end_ms: int
    zone: tzinfo

    def day(self, ms: int) -> str:
        """Return the `YYYY-MM-DD` of `ms` in the window's zone."""
        return datetime.fromtimestamp(ms / 1000, self.zone).date().isoformat()


def _day_start_ms(day: date, zone: tzinfo) -> int:
    return int(datetime.combine(day, time(), zone).timestamp() * 1000)


def resolve_window(
    *,
    start_date: str | None,
    end_date: str | None,
    range_: UsageRange | None,
    zone: tzinfo,
    now_ms: int,
) -> UsageWindow:
    """Resolve OpenClaw's date params (explicit days, a preset, else the last 30 days).

    Raises:
        ValueError: one date without the other, an impossible date, or start after end.
    """
    today = datetime.fromtimestamp(now_ms / 1000, zone).date()
    if (start_date is None) != (end_date is None):
        raise ValueError("startDate and endDate must be provided together")
    if start_date is not None and end_date is not None:
        try:
            first, last = date.fromisoformat(start_date), date.fromisoformat(end_date)
        except ValueError:
            raise ValueError("invalid date: expected a valid YYYY-MM-DD calendar date") from None
        if first > last:
            raise ValueError("startDate must not be after endDate")
    elif range_ == "all":
        return UsageWindow(0, _day_start_ms(today + timedelta(days=1), zone) - 1, zone)
    else:
        days = _RANGE_DAYS.get(range_ or "", DEFAULT_DAYS)
        first, last = today - timedelta(days=days - 1), today
    end = _day_start_ms(last + timedelta(days=1), zone) - 1
    return UsageWindow(_day_start_ms(first, zone), end, zone)


def _totals() -> dict[str, Any]:
    return {
        "input": 0,
        "output": 0,
        "cacheRead": 0,
        "cacheWrite": 0,
        "totalTokens": 0,
        "totalCost": 0,
        "inputCost": 0,
        "outputCost": 0,
        "cacheReadCost": 0,
        "cacheWriteCost": 0,
        "missingCostEntries": 0,
    }


def _counts() -> dict[str, int]:
    return {"total": 0, "user": 0, "assistant": 0, "toolCalls": 0, "toolResults": 0, "errors": 0}


def _add_counts(target: dict[str, int], source: dict[str, int]) -> None:
    for name, value in source.items():
        if name != "date":
            target[name] += value


def _count(counts: dict[str, int], role: str) -> None:
    counts["total"] += 1
    if role in ("user", "assistant"):
        counts[role] += 1


def _session_usage(
    record: SessionRecord, times: list[tuple[str, int]], window: UsageWindow
) -> dict[str, Any]:
    """One session's summary (OpenClaw's `SessionCostSummary`), token figures 0."""
    counts = _counts()
    daily: dict[str, dict[str, Any]] = {}
    for role, ts in times:
        _count(counts, role)
        day = window.day(ts)
        _count(daily.setdefault(day, {"date": day, **_counts()}), role)
    days = sorted(daily)
    usage: dict[str, Any] = {
        "sessionId": record.session_id,
        "activityDates": days,
        "dailyBreakdown": [{"date": d, "tokens": 0, "cost": 0, **_totals()} for d in days],
        "dailyMessageCounts": [daily[d] for d in days],
        "messageCounts": counts,
        "modelUsage": [],
        **_totals(),
    }
    if times:
        first, last = times[0][1], times[-1][1]
        usage.update(firstActivity=first, lastActivity=last, durationMs=max(0, last - first))
    if record.model:
        provider, _, model = record.model.rpartition("/")
        entry = {"provider": provider or None, "model": model, "count": counts["assistant"]}
        usage["modelUsage"] = [{**entry, "totals": _totals()}]
    return usage


def _aggregates(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """OpenClaw's aggregate accumulator over the rows' usage, token figures 0."""
    messages = _counts()
    daily: dict[str, dict[str, Any]] = {}
    agents: set[str] = set()
    counted = longest = 0
    for row in rows:
        usage = row["usage"]
        agents.add(row["agentId"])
        _add_counts(messages, usage["messageCounts"])
        if usage["messageCounts"]["total"] > 0:
            counted += 1
        longest = max(longest, usage.get("durationMs", 0))
        for day in usage["dailyMessageCounts"]:
            entry = daily.setdefault(
                day["date"],
                {
                    "date": day["date"],
                    "tokens": 0,
                    "cost": 0,
                    "messages": 0,
                    "toolCalls": 0,
                    "errors": 0,
                },
            )
            entry["messages"] += day["total"]
    result: dict[str, Any] = {
        "sessionCount": counted,
        "messages": messages,
        "tools": {"totalCalls": 0, "uniqueTools": 0, "tools": []},
        "byModel": [],
        "byProvider": [],
        "byAgent": [{"agentId": a, "totals": _totals()} for a in sorted(agents)],
        "byChannel": [],
        "byCreator": [],
        "costDaily": [{"date": d, **_totals()} for d in sorted(daily)],
        "dailyLatency": [],
        "modelDaily": [],
        "daily": [daily[d] for d in sorted(daily)],
    }
    if longest > 0:
        result["longestSessionDurationMs"] = longest
    return result


def usage_report(
    sessions: list[SessionRecord],
    messages: list[tuple[str, str, int]],
    window: UsageWindow,
    *,
    now_ms: int,
    limit: int,
    key: str | None = None,
) -> dict[str, Any]:
    """Build `sessions.usage`'s result: the sessions active in the window, newest first.

    A session is in the report when it has a message in the window or was updated in it;
    `limit` caps the rows, not the totals and aggregates.
    """
    by_session: dict[str, list[tuple[str, int]]] = {}
    for session_id, role, ts in messages:
        by_session.setdefault(session_id, []).append((role, ts))
    rows: list[dict[str, Any]] = []
    for record in sorted(sessions, key=lambda r: (r.updated_at, r.key), reverse=True):
        if key is not None and record.key != key:
            continue
        times = by_session.get(record.session_id, [])
        if not times and not window.start_ms <= record.updated_at <= window.end_ms:
            continue
        provider, _, model = (record.model or "").rpartition("/")
        rows.append(
            {
                "key": record.key,
                "label": record.label,
                "sessionId": record.session_id,
                "scope": "instance",
                "updatedAt": record.updated_at,
                "agentId": record.agent_id,
                "creatorKey": '["unknown"]',
                "chatType": "direct",
                "modelProvider": provider or None,
                "model": model or None,
                "usage": _session_usage(record, times, window),
                "hasContextWeight": False,
            }
        )
    return {
        "updatedAt": now_ms,
        "startDate": window.day(window.start_ms),
        "endDate": window.day(window.end_ms),
        "sessions": rows[:limit],
        "totals": _totals(),
        "aggregates": _aggregates(rows),
        "creatorOptions": [{"key": '["unknown"]'}],
        "cacheStatus": {
            "status": "fresh",
            "cachedFiles": 0,
            "pendingFiles": 0,
            "staleFiles": 0,
            "refreshedAt": now_ms,
        },
    }
