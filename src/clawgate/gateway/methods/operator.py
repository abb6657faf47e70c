"""What OpenClaw's Control UI asks of every gateway it opens (issue 21, spec §13 names).

Each answers truthfully for clawgate: `system.info` describes this host and process;
clawgate checks for no updates, asks no questions, holds no plugin or system-agent approvals
and tracks no provider quotas, so those lists are empty; `themes.list` lists the themes built
into the Control UI (clawgate installs none); `diagnostics.lanes` shows the agent
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
    "themes_list",
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


class ThemeDescriptor(Result):
    """One Control UI theme (OpenClaw's descriptor, without the definition)."""

    id: str
    name: str
    description: str
    source: str
    modes: list[str]


class ThemeSelection(Result):
    """The theme in effect and who chose it."""

    id: str
    mode: str
    scope: str
    overrides: dict[str, str]


class ThemesListResult(Result):
    """Result of `themes.list`."""

    current: ThemeSelection
    theme: ThemeDescriptor
    themes: list[ThemeDescriptor]


def _builtin(theme_id: str, name: str, description: str) -> dict[str, Any]:
    return {
        "id": theme_id,
        "name": name,
        "description": description,
        "source": "builtin",
        "modes": ["light", "dark"],
    }


#: The themes built into OpenClaw 2026.9.6's Control UI (their styles ship in its bundle):
#: what its gateway lists when no theme is installed, with `claw` in effect.
BUILTIN_THEMES: tuple[dict[str, Any], ...] = (
    _builtin(
        "claw",
        "Claw",
        "Signature coral red and teal on charcoal or pale surfaces, with Instrument Sans "
        "throughout. A balanced everyday workspace.",
    ),
    _builtin(
        "knot",
        "Knot",
        "Crimson accents on true black or clean white, with Geist typography. Sharp, minimal, "
        "and high contrast.",
    ),
    _builtin(
        "dash",
        "Dash",
        "Toasted caramel on deep cocoa or warm cream, with DM Sans controls and Fraunces serif "
        "chat. Warm and bookish.",
    ),
    _builtin(
        "absolutely",
        "Absolutely",
        "Terracotta clay on warm graphite or soft cream, with Space Grotesk controls and Lora "
        "serif chat. Quiet editorial character.",
    ),
    _builtin(
        "tide",
        "Tide",
        "Steel cyan on cool slate or pale blue-gray, with IBM Plex Sans throughout. Calm, "
        "technical, and understated.",
    ),
    _builtin(
        "beacon",
        "Beacon",
        "High-visibility amber on black or white, bold focus rings, and Atkinson Hyperlegible "
        "typography. Designed for maximum readability.",
    ),
    _builtin(
        "phosphor",
        "Phosphor",
        "Luminous green on green-tinted black or pale green, with JetBrains Mono throughout. "
        "A classic green terminal atmosphere.",
    ),
    _builtin(
        "crt",
        "CRT",
        "White phosphor and amber on tube black, with a light counterpart, JetBrains Mono, and "
        "nearly square corners. A retro computer console.",
    ),
    _builtin(
        "manuscript",
        "Manuscript",
        "Lapis blue and gold on aged paper, with a dark reading-room variant and Lora serif "
        "throughout. A quiet illuminated manuscript.",
    ),
    _builtin(
        "rose",
        "Rosé",
        "Dried rose and gold on deep plum-gray or soft rose-tinted cream, with DM Sans. "
        "Gentle, muted, and warm.",
    ),
    _builtin(
        "miami",
        "Miami",
        "Hot magenta and cyan on violet-black or pale lavender, with Space Grotesk. Bright "
        "neon energy and a synthwave character.",
    ),
)


@method("themes.list", params=EmptyParams, result=ThemesListResult, scope=READ)
def themes_list(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """List the Control UI's built-in themes: clawgate installs none and stores no choice."""
    current = {"id": "claw", "mode": "system", "scope": "gateway", "overrides": {}}
    return {"current": current, "theme": BUILTIN_THEMES[0], "themes": list(BUILTIN_THEMES)}
