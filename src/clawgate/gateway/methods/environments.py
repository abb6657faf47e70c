"""`environments.list`: the machines agents can work on, as OpenClaw 2026.9.6 lists them.

OpenClaw's Control UI (the systems page) lists "environments": the gateway's own host, each
paired node, and cloud workers. clawgate has no cloud workers, so its answer is the gateway
host and the nodes of `node.list`, projected here (`environment_of`, pure).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Literal

from ...protocol.scopes import READ
from ..context import CallContext
from ..registry import method
from ._common import Ignored, OpenResult, Params, Result
from .nodes import nodes_of

__all__ = ["environment_of", "environments_list", "gateway_environment"]

#: OpenClaw caps a node's listed commands at this many.
_MAX_COMMANDS = 128


class EnvironmentsListParams(Params):
    """Params of `environments.list`."""

    # "profiles" asks for cloud worker profiles only: clawgate has none.
    projection: Literal["profiles"] | None = None
    # Worker placement and desktop hosting do not exist here: accepted, ignored.
    runtimeId: Ignored = None
    includeDesktopSetup: Ignored = None


class EnvironmentShape(OpenResult):
    """One environment (OpenClaw's EnvironmentSummary; members beyond these may follow)."""

    id: str
    type: Literal["local", "node"]
    label: str
    status: Literal["available", "unavailable"]
    trust: Literal["persistent"]
    sessionHost: bool


class EnvironmentsListResult(Result):
    """Result of `environments.list`."""

    environments: list[EnvironmentShape]


def gateway_environment(platform: str) -> dict[str, Any]:
    """Return the gateway's own host as an environment."""
    return {
        "id": "gateway",
        "type": "local",
        "label": "Gateway local",
        "status": "available",
        "platform": platform,
        "sessionHost": True,
        "trust": "persistent",
        "capabilities": ["agent.run", "sessions"],
    }


def environment_of(node: Mapping[str, Any]) -> dict[str, Any]:
    """Return a `node.list` entry as an environment (`node:<id>`; available when connected)."""
    commands = sorted(set(node["commands"]))
    environment: dict[str, Any] = {
        "id": f"node:{node['nodeId']}",
        "type": "node",
        "label": node.get("displayName") or node["nodeId"],
        "status": "available" if node["connected"] else "unavailable",
        "sessionHost": False,
        "trust": "persistent",
    }
    if node.get("platform"):
        environment["platform"] = node["platform"]
    if node.get("connectedAtMs") is not None:
        environment["lastConnectedAtMs"] = node["connectedAtMs"]
    capabilities = sorted(set(node["caps"]) | set(commands))
    if capabilities:
        environment["capabilities"] = capabilities
    if node["connected"] and commands:
        environment["invocableCommands"] = commands[:_MAX_COMMANDS]
    return environment


@method(
    "environments.list", params=EnvironmentsListParams, result=EnvironmentsListResult, scope=READ
)
def environments_list(ctx: CallContext, params: EnvironmentsListParams) -> dict[str, Any]:
    """List the gateway's host and every paired or connected node."""
    if params.projection == "profiles":
        return {"environments": []}
    service = nodes_of(ctx)
    entries = (service.entry(node_id, admin=ctx.is_admin) for node_id in service.node_ids())
    nodes = [environment_of(entry) for entry in entries if entry is not None]
    return {"environments": [gateway_environment(sys.platform), *nodes]}
