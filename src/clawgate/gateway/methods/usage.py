"""`sessions.usage`: OpenClaw 2026.9.6's usage report, from clawgate's sessions and messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from ...agents.usage import UsageRange, resolve_window, usage_report
from ...protocol.errors import InvalidRequest
from ...protocol.scopes import READ
from ..context import CallContext
from ..registry import method
from ._common import Ignored, Params, Result, agents_of, check_agent_id, resolve_key

__all__ = ["sessions_usage"]

_DATE = r"^\d{4}-\d{2}-\d{2}$"
_OFFSET = r"^UTC[+-]\d{1,2}(?::[0-5]\d)?$"


class SessionsUsageParams(Params):
    """Params of `sessions.usage` (OpenClaw 2026.9.6's `SessionsUsageParamsSchema`)."""

    key: Annotated[str, Field(min_length=1)] | None = None
    agentId: Annotated[str, Field(min_length=1)] | None = None
    agentScope: Literal["all"] | None = None
    startDate: Annotated[str, Field(pattern=_DATE)] | None = None
    endDate: Annotated[str, Field(pattern=_DATE)] | None = None
    mode: Literal["utc", "gateway", "specific"] | None = None
    range: UsageRange | None = None
    timeZone: Annotated[str, Field(min_length=1)] | None = None
    utcOffset: Annotated[str, Field(pattern=_OFFSET)] | None = None
    limit: Annotated[int, Field(ge=1)] | None = None
    # Every clawgate session has one creator (unknown) and one instance (no rotation).
    creatorKey: Ignored = None
    groupBy: Ignored = None
    includeHistorical: Ignored = None
    includeContextWeight: Ignored = None


class SessionsUsageResult(Result):
    """Result of `sessions.usage` (OpenClaw's shape; token and cost figures are 0)."""

    updatedAt: int
    startDate: str
    endDate: str
    sessions: list[dict[str, Any]]
    totals: dict[str, Any]
    aggregates: dict[str, Any]
    creatorOptions: list[dict[str, Any]]
    cacheStatus: dict[str, Any]


def _offset_zone(raw: str) -> tzinfo:
    sign = -1 if raw[3] == "-" else 1
    hours, _, minutes = raw[4:].partition(":")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))


def _zone(params: SessionsUsageParams) -> tzinfo:
    """The zone the dates mean: UTC, the gateway's local zone, or the one the client names."""
    if params.mode == "gateway":
        return datetime.now().astimezone().tzinfo or UTC
    if params.mode != "specific":
        return UTC
    if params.timeZone is not None:
        try:
            return ZoneInfo(params.timeZone)
        except (ZoneInfoNotFoundError, ValueError):
            if params.utcOffset is None:
                raise InvalidRequest(
                    f"unknown timeZone {params.timeZone!r}: name an IANA zone"
                ) from None
    if params.utcOffset is not None:
        return _offset_zone(params.utcOffset)
    raise InvalidRequest("mode 'specific' needs timeZone (or utcOffset)")


@method("sessions.usage", params=SessionsUsageParams, result=SessionsUsageResult, scope=READ)
async def sessions_usage(ctx: CallContext, params: SessionsUsageParams) -> dict[str, Any]:
    """Report message activity per session in a date window (tokens and cost: 0)."""
    if params.agentScope == "all" and (params.agentId or params.key):
        raise InvalidRequest("agentScope=all cannot be combined with key or agentId")
    check_agent_id(params.agentId)
    service = agents_of(ctx)
    key = resolve_key(params.key) if params.key is not None else None
    now = ctx.services.clock()
    try:
        window = resolve_window(
            start_date=params.startDate,
            end_date=params.endDate,
            range_=params.range,
            zone=_zone(params),
            now_ms=now,
        )
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    messages = await service.sessions.message_times(window.start_ms, window.end_ms)
    return usage_report(
        service.sessions.all(),
        messages,
        window,
        now_ms=now,
        limit=params.limit or 50,
        key=key,
    )
