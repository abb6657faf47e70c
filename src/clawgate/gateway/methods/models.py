"""`models.list`: the models the configured agents use (OpenClaw's ModelChoice shape)."""

from __future__ import annotations

from typing import Any, Literal

from ...agents.catalog import agent_catalog
from ...protocol.scopes import READ
from ..context import CallContext
from ..registry import method
from ._common import Ignored, Params, Result, check_agent_id, resolve_key

__all__ = ["models_list"]


class ModelsListParams(Params):
    """Params of `models.list`; every view lists the same models (the configured ones)."""

    view: Literal["default", "configured", "provider-config", "all"] | None = None
    agentId: str | None = None
    sessionKey: str | None = None
    authProfileId: Ignored = None
    provider: Ignored = None
    includeDetails: Ignored = None
    includeProviderCapabilities: Ignored = None
    includeDefaultModels: Ignored = None
    preparedOnly: Ignored = None
    refresh: Ignored = None


class ModelChoice(Result):
    """One model."""

    id: str
    name: str
    provider: str
    alias: str | None = None
    contextWindow: int | None = None
    reasoning: bool | None = None


class ModelsListResult(Result):
    """Result of `models.list`."""

    models: list[ModelChoice]


@method("models.list", params=ModelsListParams, result=ModelsListResult, scope=READ)
def models_list(ctx: CallContext, params: ModelsListParams) -> dict[str, Any]:
    """List each model a configured agent uses once, with the agent's model id as alias."""
    check_agent_id(params.agentId)
    if params.sessionKey is not None:
        resolve_key(params.sessionKey)
    models: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in agent_catalog(ctx.services.info.agent):
        models.setdefault(
            (entry.provider, entry.model),
            {
                "id": entry.model,
                "name": entry.model,
                "provider": entry.provider,
                "alias": entry.model_id,
            },
        )
    return {"models": list(models.values())}
