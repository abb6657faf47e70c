"""What OpenClaw's Control UI asks of every gateway it opens (issue 21, spec §13 names).

Each answers truthfully for clawgate: `system.info` describes this host and process;
clawgate checks for no updates, asks no questions, holds no plugin or system-agent approvals
and tracks no provider quotas, so those lists are empty; `diagnostics.lanes` shows the agent
runs queued per session (one lane per session, one run at a time).
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from typing import Any

from ... import __version__
from ...protocol.scopes import READ
from ..context import CallContext
from ..registry import method
from ._common import EmptyParams, Ignored, Params, Result

__all__ = [
    "diagnostics_lanes",
    "openclaw_approval_list",
    "plugin_approval_list",
    "question_list",
    "system_info",
    "update_status",
    "usage_status",
]


class SystemInfoResult(Result):
    """Result of `system.info` (OpenClaw's fields; `nodeVersion` names clawgate's runtime)."""

    machineName: str
    hostname: str
    platform: str
    release: str
    arch: str
    osLabel: str
    nodeVersion: str
    pid: int
    uptimeMs: int
    cpuCount: int
    memoryTotalBytes: int
    memoryFreeBytes: int
    port: int | None = None
    loadAverage: list[float] | None = None


def _memory() -> tuple[int, int]:
    """Return (total, available) bytes of RAM, or zeros where the OS does not say."""
    try:
        pages, free = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 0, 0
    return pages * size, free * size


@method("system.info", params=EmptyParams, result=SystemInfoResult, scope=READ)
def system_info(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """Describe the machine and the gateway process (polled by the Control UI's settings)."""
    total, free = _memory()
    uname = platform.uname()
    hostname = socket.gethostname()
    info: dict[str, Any] = {
        "machineName": hostname,
        "hostname": hostname,
        "platform": sys.platform,
        "release": uname.release,
        "arch": uname.machine,
        "osLabel": f"{uname.system} {uname.release}",
        "nodeVersion": f"clawgate {__version__} (Python {platform.python_version()})",
        "pid": os.getpid(),
        "uptimeMs": ctx.services.info.uptime_ms(),
        "cpuCount": os.cpu_count() or 1,
        "memoryTotalBytes": total,
        "memoryFreeBytes": free,
    }
    if hasattr(os, "getloadavg"):
        info["loadAverage"] = [round(value, 2) for value in os.getloadavg()]
    return info


class UpdateStatusParams(Params):
    """Params of `update.status`."""

    refreshCheckout: Ignored = None


class UpdateStatusResult(Result):
    """Result of `update.status`: clawgate runs no update check."""

    sentinel: None
    updateAvailable: None


@method("update.status", params=UpdateStatusParams, result=UpdateStatusResult, scope=READ)
def update_status(ctx: CallContext, params: UpdateStatusParams) -> dict[str, Any]:
    """Answer that no update is known: clawgate does not check for updates itself."""
    return {"sentinel": None, "updateAvailable": None}


class QuestionListResult(Result):
    """Result of `question.list`."""

    questions: list[dict[str, Any]]


@method("question.list", params=EmptyParams, result=QuestionListResult, scope=READ)
def question_list(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """List the agent's open questions to the operator: clawgate's agents ask none."""
    return {"questions": []}


@method("plugin.approval.list", params=EmptyParams, result=list[dict[str, Any]], scope=READ)
def plugin_approval_list(ctx: CallContext, params: EmptyParams) -> list[dict[str, Any]]:
    """List pending plugin approvals: clawgate's plugins request none."""
    return []


@method("openclaw.approval.list", params=EmptyParams, result=list[dict[str, Any]], scope=READ)
def openclaw_approval_list(ctx: CallContext, params: EmptyParams) -> list[dict[str, Any]]:
    """List pending system-agent approvals: clawgate has no system agent."""
    return []


class Lane(Result):
    """One command lane: here, one session's agent runs."""

    lane: str
    queuedCount: int
    activeCount: int
    maxConcurrent: int
    draining: bool
    generation: int
    blockedBy: None


class LanesResult(Result):
    """Result of `diagnostics.lanes`."""

    ts: int
    lanes: list[Lane]
    dynamic: None


@method("diagnostics.lanes", params=EmptyParams, result=LanesResult, scope=READ)
def diagnostics_lanes(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """Show the agent runs running and waiting, one lane per session."""
    agents = ctx.services.agents
    loads = agents.runs.lane_loads() if agents is not None else []
    lanes = [
        {
            "lane": key,
            "queuedCount": waiting,
            "activeCount": running,
            "maxConcurrent": 1,
            "draining": False,
            "generation": 0,
            "blockedBy": None,
        }
        for key, running, waiting in loads
    ]
    return {"ts": ctx.services.clock(), "lanes": lanes, "dynamic": None}


class UsageStatusResult(Result):
    """Result of `usage.status`: provider quota windows."""

    updatedAt: int
    providers: list[dict[str, Any]]


@method("usage.status", params=EmptyParams, result=UsageStatusResult, scope=READ)
def usage_status(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """List provider quota windows: clawgate tracks none (its backends report no quotas)."""
    return {"updatedAt": ctx.services.clock(), "providers": []}
