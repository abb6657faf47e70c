"""`agents.list`: the agents this gateway serves (OpenClaw's shape; `/v1/models` lists the same)."""

from __future__ import annotations

from typing import Any, Literal

from ...agents.catalog import agent_catalog
from ...agents.sessions import DEFAULT_AGENT_ID
from ...protocol.scopes import READ
from ..context import CallContext
from ..registry import method
from ._common import EmptyParams, Result, avatar_of

__all__ = ["agents_list"]

#: The main session's key within an agent (`agent:<agentId>:main`).
MAIN_KEY = "main"


class AgentIdentity(Result):
    """How an agent presents itself."""

    name: str | None = None
    avatar: str | None = None


class AgentModel(Result):
    """The model an agent uses, as `<provider>/<model>`."""

    primary: str | None = None


class AgentSummary(Result):
    """One agent."""

    id: str
    name: str | None = None
    identity: AgentIdentity | None = None
    model: AgentModel | None = None


class AgentsListResult(Result):
    """Result of `agents.list`."""

    defaultId: str
    mainKey: str
    scope: Literal["per-sender", "global"]
    agents: list[AgentSummary]


@method("agents.list", params=EmptyParams, result=AgentsListResult, scope=READ)
def agents_list(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """List the configured agents, the default first, each with the model it uses."""
    agents = []
    for entry in agent_catalog(ctx.services.info.agent):
        identity: dict[str, Any] = {
            "name": entry.name,
            "avatar": avatar_of(entry.name, entry.avatar),
        }
        agents.append(
            {
                "id": entry.agent_id,
                "name": entry.name,
                "identity": identity,
                "model": {"primary": entry.primary_model},
            }
        )
    return {
        "defaultId": DEFAULT_AGENT_ID,
        "mainKey": MAIN_KEY,
        "scope": "per-sender",
        "agents": agents,
    }
