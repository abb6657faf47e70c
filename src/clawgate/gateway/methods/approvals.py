"""Exec approval methods: answer pending `system.run` requests, list closed ones, policies."""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import Field, StringConstraints

from ...protocol.approval_history import (
    HistoryCursor,
    InvalidCursorError,
    Resolver,
    ResolverKind,
)
from ...protocol.errors import APPROVAL_NOT_FOUND, InvalidRequest, RequestError, Unavailable
from ...protocol.exec_approvals import MAX_ALLOWLIST, ExecMode, ExecPolicy
from ...protocol.limits import (
    APPROVAL_HISTORY_CURSOR_MAX_CHARS,
    APPROVAL_HISTORY_DEFAULT_LIMIT,
    APPROVAL_HISTORY_MAX_LIMIT,
)
from ...protocol.scopes import ADMIN, APPROVALS
from ..context import CallContext
from ..exec_approvals import ExecApprovals
from ..registry import method
from ._common import EmptyParams, Params, Result

__all__ = [
    "ExecApprovalRequested",
    "ExecApprovalResolved",
    "approval_history",
    "exec_approval_grants_list",
    "exec_approval_list",
    "exec_approval_resolve",
    "exec_approvals_get",
    "exec_approvals_set",
]

#: Where the Control UI is served (`control_ui.MOUNT`; not imported from there, since
#: `control_ui` imports this package): history rows link to its `/approve/<id>` route.
CONTROL_UI_MOUNT: Final = "/control"

NonEmpty = Annotated[str, StringConstraints(min_length=1)]
ModeName = Literal["deny", "allowlist", "ask", "full"]


def approvals_of(ctx: CallContext) -> ExecApprovals:
    """Return the gateway's exec approvals.

    Raises:
        Unavailable: the gateway runs without nodes (no state store).
    """
    nodes = ctx.services.nodes
    if nodes is None:
        raise Unavailable("exec approvals need the state store; start the gateway with a home")
    return nodes.approvals


class ApprovalRequestShape(Result):
    """What an approval asks about (OpenClaw's `request` object)."""

    command: str
    commandArgv: list[str]
    cwd: str | None
    nodeId: str
    host: str


class ExecApprovalRequested(Result):
    """A pending approval (also the `exec.approval.requested` payload)."""

    approvalKind: Literal["exec"]
    id: str
    nodeId: str
    argv: list[str]
    cwd: str | None
    requestedBy: str
    request: ApprovalRequestShape
    createdAtMs: int
    expiresAtMs: int


class ExecApprovalResolved(Result):
    """The `exec.approval.resolved` payload."""

    id: str
    nodeId: str
    decision: Literal["allow-once", "allow-always", "deny"]
    resolvedBy: str | None
    reason: Literal["expired", "cancelled"] | None = None
    ts: int


class ApprovalListResult(Result):
    """Result of `exec.approval.list`."""

    approvals: list[ExecApprovalRequested]


class ResolveParams(Params):
    """Params of `exec.approval.resolve` (OpenClaw's `reviewer`, `grantExpiresInDays` ignored)."""

    id: NonEmpty
    decision: Literal["allow-once", "allow-always", "deny"]
    reviewer: Any = None
    grantExpiresInDays: Annotated[int, Field(ge=1, le=3650)] | None = None


class ResolveResult(Result):
    """Result of `exec.approval.resolve`."""

    ok: bool
    id: str
    decision: str


class PolicyGetParams(Params):
    """Params of `exec.approvals.get`: a node, or none for the default policy."""

    nodeId: NonEmpty | None = None


class PolicySetParams(Params):
    """Params of `exec.approvals.set`: the new mode and/or allowlist."""

    nodeId: NonEmpty | None = None
    mode: ModeName | None = None
    allowlist: (
        Annotated[list[Annotated[list[str], Field(min_length=1)]], Field(max_length=MAX_ALLOWLIST)]
        | None
    ) = None


class PolicyResult(Result):
    """A node's (or the default) exec policy."""

    nodeId: str | None = None
    inherited: bool
    mode: ModeName
    allowlist: list[list[str]]
    updatedAtMs: int | None = None


def _not_found(approval_id: str) -> RequestError:
    return RequestError(
        f"no pending approval {approval_id}; it was answered or expired (exec.approval.list)",
        code=APPROVAL_NOT_FOUND,
    )


class HistoryParams(Params):
    """Params of `approval.history` (OpenClaw 2026.9.6's)."""

    cursor: (
        Annotated[
            str, StringConstraints(min_length=1, max_length=APPROVAL_HISTORY_CURSOR_MAX_CHARS)
        ]
        | None
    ) = None
    limit: Annotated[int, Field(ge=1, le=APPROVAL_HISTORY_MAX_LIMIT)] = (
        APPROVAL_HISTORY_DEFAULT_LIMIT
    )
    kind: Literal["exec", "plugin", "system-agent"] | None = None


class ExecPresentation(Result):
    """What a closed exec approval asked, for reviewers (no cwd, no environment)."""

    kind: Literal["exec"]
    commandText: str
    host: str
    nodeId: str
    allowedDecisions: list[Literal["allow-once", "allow-always", "deny"]]


class HistoryResolver(Result):
    """Who closed it: a paired device, a client without one, or the gateway (`system`)."""

    kind: Literal["device", "runtime", "system"]
    id: str | None = None


class HistoryItem(Result):
    """One closed approval (OpenClaw's terminal approval snapshot)."""

    id: str
    status: Literal["allowed", "denied", "expired", "cancelled"]
    presentation: ExecPresentation
    urlPath: str
    createdAtMs: int
    expiresAtMs: int
    resolvedAtMs: int
    source: dict[str, str]
    resolver: HistoryResolver
    reason: Literal["user", "timeout", "run-aborted"]
    decision: Literal["allow-once", "allow-always", "deny"] | None = None


class HistoryResult(Result):
    """Result of `approval.history`: a page, newest first, and where the next one starts."""

    items: list[HistoryItem]
    nextCursor: str | None = None


class GrantsListParams(Params):
    """Params of `exec.approval.grants.list`."""

    limit: Annotated[int, Field(ge=1, le=500)] | None = None


class GrantsListResult(Result):
    """Result of `exec.approval.grants.list`: always empty (see the handler)."""

    grants: list[dict[str, Any]]


@method("approval.history", params=HistoryParams, result=HistoryResult, scope=APPROVALS)
async def approval_history(ctx: CallContext, params: HistoryParams) -> dict[str, Any]:
    """List closed exec approvals (answered, expired, cancelled), newest first, by pages."""
    service = approvals_of(ctx)
    after = None
    if params.cursor is not None:
        try:
            after = HistoryCursor.decode(params.cursor)
        except InvalidCursorError:
            raise InvalidRequest(
                "invalid approval.history cursor; send a nextCursor exactly as it was returned"
            ) from None
    if params.kind not in (None, "exec"):
        # clawgate asks for exec approvals only: no plugin or system-agent approval exists.
        return {"items": []}
    rows = await service.history(after, params.limit + 1)
    page = rows[: params.limit]
    answer: dict[str, Any] = {"items": [row.snapshot(CONTROL_UI_MOUNT) for row in page]}
    if len(rows) > params.limit:
        answer["nextCursor"] = HistoryCursor(page[-1].resolved_at_ms, page[-1].id).encode()
    return answer


@method(
    "exec.approval.grants.list", params=GrantsListParams, result=GrantsListResult, scope=APPROVALS
)
def exec_approval_grants_list(ctx: CallContext, params: GrantsListParams) -> dict[str, Any]:
    """List standing grants: none, since clawgate's cron jobs cannot hold one.

    OpenClaw's standing grants let one cron job run one command unasked; clawgate's
    `allow-always` adds the argv to the node's allowlist instead (`exec.approvals.get`).
    """
    approvals_of(ctx)
    return {"grants": []}


@method("exec.approval.list", params=EmptyParams, result=ApprovalListResult, scope=APPROVALS)
def exec_approval_list(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """List the `system.run` requests waiting for a decision, oldest first."""
    return {"approvals": approvals_of(ctx).pending()}


@method("exec.approval.resolve", params=ResolveParams, result=ResolveResult, scope=APPROVALS)
async def exec_approval_resolve(ctx: CallContext, params: ResolveParams) -> dict[str, Any]:
    """Allow once, allow always (the exact argv joins the node's allowlist) or deny."""
    client = ctx.caller.client
    resolved_by = (client.displayName or client.id) if client is not None else None
    device_id = ctx.caller.device_id
    resolver = (
        Resolver(ResolverKind.DEVICE, device_id)
        if device_id
        else Resolver(ResolverKind.RUNTIME, client.id if client is not None else None)
    )
    try:
        await approvals_of(ctx).resolve(params.id, params.decision, resolved_by, resolver)
    except KeyError:
        raise _not_found(params.id) from None
    return {"ok": True, "id": params.id, "decision": params.decision}


def _policy_answer(service: ExecApprovals, node_id: str | None) -> dict[str, Any]:
    policy, own = service.policy_for(node_id)
    answer: dict[str, Any] = {"inherited": not own, **policy.payload()}
    if node_id is not None:
        answer["nodeId"] = node_id
    return answer


@method("exec.approvals.get", params=PolicyGetParams, result=PolicyResult, scope=ADMIN)
def exec_approvals_get(ctx: CallContext, params: PolicyGetParams) -> dict[str, Any]:
    """Read a node's exec policy (its own, or the default it inherits)."""
    return _policy_answer(approvals_of(ctx), params.nodeId)


@method("exec.approvals.set", params=PolicySetParams, result=PolicyResult, scope=ADMIN)
async def exec_approvals_set(ctx: CallContext, params: PolicySetParams) -> dict[str, Any]:
    """Change a node's (or the default) exec policy; omitted fields keep their value."""
    service = approvals_of(ctx)
    if params.mode is None and params.allowlist is None:
        raise InvalidRequest("give mode and/or allowlist to change")
    current, _ = service.policy_for(params.nodeId)
    policy = ExecPolicy(
        mode=ExecMode(params.mode) if params.mode is not None else current.mode,
        allowlist=(
            tuple(tuple(p) for p in params.allowlist)
            if params.allowlist is not None
            else current.allowlist
        ),
        updated_at_ms=ctx.services.clock(),
    )
    await service.set_policy(params.nodeId, policy)
    return _policy_answer(service, params.nodeId)
