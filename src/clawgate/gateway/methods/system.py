"""System methods: health, status, presence, system events, heartbeats (spec §10.1)."""

from __future__ import annotations

import os
import resource
import sys
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from ... import __version__
from ...protocol.scopes import ADMIN, READ, WRITE, MethodRole
from ...protocol.shapes import HealthSummary, HeartbeatEvent, PresenceEntry, StatusSummary
from ..context import CallContext
from ..registry import Idempotency, method
from ._common import EmptyParams, Params, Result

__all__ = [
    "health",
    "last_heartbeat",
    "set_heartbeats",
    "status",
    "system_event",
    "system_presence",
    "wake",
]

IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class HealthParams(Params):
    """Params of `health`."""

    probe: bool | None = None


class SystemEventParams(Params):
    """Params of `system-event`."""

    text: str
    instanceId: str | None = None
    deviceId: str | None = None
    host: str | None = None
    ip: str | None = None
    mode: str | None = None
    version: str | None = None
    platform: str | None = None
    deviceFamily: str | None = None
    modelIdentifier: str | None = None
    lastInputSeconds: Annotated[int, Field(ge=0)] | None = None
    reason: str | None = None
    roles: list[str] | None = None
    scopes: list[str] | None = None
    tags: list[str] | None = None
    idempotencyKey: IdempotencyKey | None = None


class SetHeartbeatsParams(Params):
    """Params of `set-heartbeats`."""

    enabled: bool


class WakeParams(Params):
    """Params of `wake`."""

    mode: Literal["now", "next-heartbeat"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
    idempotencyKey: IdempotencyKey | None = None


class OkResult(Result):
    """`{ok: true}`."""

    ok: bool


class SetHeartbeatsResult(OkResult):
    """Result of `set-heartbeats`."""

    enabled: bool


_NO_SESSIONS: dict[str, Any] = {"count": 0, "recent": []}


def _rss_bytes() -> int:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is KiB on Linux and bytes on macOS; prefer the current RSS where it exists.
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return usage if sys.platform == "darwin" else usage * 1024


@method("health", params=HealthParams, result=HealthSummary, role=MethodRole.ANY)
def health(ctx: CallContext, params: HealthParams) -> dict[str, Any]:
    """Return the cached health summary, or a fresh one (also broadcast) with `probe`."""
    if params.probe:
        return ctx.services.health.refresh()
    return ctx.services.health.summary


@method("status", params=EmptyParams, result=StatusSummary, scope=READ)
def status(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """Return the status summary; pid and memory only for admin."""
    services = ctx.services
    schedule = services.heartbeats.schedule()
    sessions = services.agents.sessions.counts() if services.agents else _NO_SESSIONS
    summary: dict[str, Any] = {
        "runtimeVersion": __version__,
        "uptimeMs": services.info.uptime_ms(),
        "heartbeat": {
            "defaultAgentId": "main",
            "agents": [{"agentId": "main", **schedule}],
        },
        "channelSummary": [],
        "queuedSystemEvents": services.system_events.peek(),
        "sessions": {
            **sessions,
            "byAgent": [{"agentId": "main", **sessions}],
        },
    }
    if ctx.is_admin:
        summary["pid"] = os.getpid()
        summary["processMemory"] = {"rssBytes": _rss_bytes()}
    return summary


@method("system-presence", params=EmptyParams, result=list[PresenceEntry], scope=READ)
def system_presence(ctx: CallContext, params: EmptyParams) -> list[dict[str, Any]]:
    """Return the presence list."""
    return ctx.services.presence.entries()


@method(
    "system-event",
    params=SystemEventParams,
    result=OkResult,
    scope=ADMIN,
    idempotency=Idempotency.OPTIONAL,
)
async def system_event(ctx: CallContext, params: SystemEventParams) -> dict[str, Any]:
    """Queue a system event for the main session; upsert presence when it names a client."""
    services = ctx.services
    now = services.clock()
    # Committed before the answer: an acknowledged event survives a crash.
    await services.system_events.push(params.text, now)
    key = params.instanceId or params.deviceId
    if key is not None:
        entry = params.model_dump(exclude_none=True, exclude={"idempotencyKey"})
        entry["ts"] = now
        services.presence.upsert_detached(key, entry, now)
    return {"ok": True}


@method("last-heartbeat", params=EmptyParams, result=HeartbeatEvent | None, scope=READ)
def last_heartbeat(ctx: CallContext, params: EmptyParams) -> dict[str, Any] | None:
    """Return the last heartbeat event, or null when none ran yet."""
    return ctx.services.heartbeats.last


@method("set-heartbeats", params=SetHeartbeatsParams, result=SetHeartbeatsResult, scope=ADMIN)
async def set_heartbeats(ctx: CallContext, params: SetHeartbeatsParams) -> dict[str, Any]:
    """Switch the heartbeat runner on or off; the switch survives restarts."""
    await ctx.services.heartbeats.set_enabled(params.enabled)
    return {"ok": True, "enabled": params.enabled}


@method("wake", params=WakeParams, result=OkResult, scope=WRITE, idempotency=Idempotency.OPTIONAL)
async def wake(ctx: CallContext, params: WakeParams) -> dict[str, Any]:
    """Queue `text` for the main session; beat now (`now`) or at the next heartbeat."""
    services = ctx.services
    # Committed before the answer, and before the beat that reads it is asked for.
    await services.system_events.push(params.text, services.clock())
    if params.mode == "now":
        services.heartbeats.request_beat()
    return {"ok": True}
