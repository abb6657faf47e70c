"""Operator views and local control of integrations (the reconciliation ledger, spec §5).

``integrations.apply`` is a clawgate extension for machines without a hub: it feeds the same
engine a DESIRED_STATE would, with the next revision. While a control link is configured the
hub owns the desired state and ``integrations.apply`` is refused.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ...cloud.errors import DesiredStateError
from ...protocol.errors import InvalidRequest, Unavailable
from ...protocol.scopes import ADMIN, READ
from ..context import CallContext
from ..registry import method
from ._common import OpenResult, Params, Result
from .plugins import plugin_side

__all__ = ["integrations_apply", "integrations_list"]


class ListParams(Params):
    """Params of `integrations.list`."""

    owner: str | None = Field(default=None, description="only integrations this plugin owns")


class IntegrationRow(OpenResult):
    """One integration as the ledger sees it (a RECONCILIATION_REPORT entry)."""

    id: str
    status: str
    version: str | None
    desiredVersion: str | None
    enabled: bool
    attempts: int


class ListResult(Result):
    """Result of `integrations.list`."""

    revision: int
    appliedRevision: int
    converged: bool
    running: bool
    integrations: list[IntegrationRow]
    lastReport: dict[str, Any] | None


class ApplyParams(Params):
    """Params of `integrations.apply`: a full desired set, as DESIRED_STATE carries it."""

    integrations: list[dict[str, Any]] = Field(max_length=1000)
    ifRevision: int | None = Field(default=None, ge=0)


class ApplyResult(Result):
    """Result of `integrations.apply`."""

    revision: int
    changed: bool


@method("integrations.list", params=ListParams, result=ListResult, scope=READ)
def integrations_list(ctx: CallContext, params: ListParams) -> dict[str, Any]:
    """List integrations with their status, owner, attempts and last error."""
    reconciler = plugin_side(ctx).reconciler
    view = reconciler.ledger_view(params.owner)
    status = reconciler.status()
    return {
        "revision": view["revision"],
        "appliedRevision": reconciler.applied_revision,
        "converged": status["converged"],
        "running": status["running"],
        "integrations": view["integrations"],
        "lastReport": reconciler.last_report,
    }


@method("integrations.apply", params=ApplyParams, result=ApplyResult, scope=ADMIN)
async def integrations_apply(ctx: CallContext, params: ApplyParams) -> dict[str, Any]:
    """Replace the desired set of integrations (no hub); the engine converges to it."""
    side = plugin_side(ctx)
    if side.hub_managed:
        raise Unavailable(
            "a hub manages this daemon's integrations ([cloud] url is set); change them there"
        )
    reconciler = side.reconciler
    if params.ifRevision is not None and params.ifRevision != reconciler.revision:
        raise InvalidRequest(
            f"desired state is at revision {reconciler.revision}, not {params.ifRevision};"
            " list integrations and apply again"
        )
    payload = {"revision": reconciler.revision + 1, "integrations": params.integrations}
    try:
        outcome = await reconciler.accept(payload)
    except DesiredStateError as exc:
        raise InvalidRequest(f"{exc}; fix the file and apply again") from None
    return {"revision": outcome.revision, "changed": outcome.reason == "accepted"}
