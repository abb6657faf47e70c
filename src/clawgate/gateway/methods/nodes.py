"""Node methods (spec §10.5): listing, renaming, invoking, and what nodes themselves call."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from ...protocol.errors import InvalidRequest, Unavailable
from ...protocol.limits import NODE_INVOKE_DEFAULT_TIMEOUT_MS, NODE_INVOKE_MAX_TIMEOUT_MS
from ...protocol.scopes import ADMIN, PAIRING, READ, WRITE, MethodRole
from ..context import CallContext
from ..nodes import NodeService
from ..registry import Idempotency, method
from ._common import EmptyParams, IdempotencyKey, Params, Result

__all__ = [
    "InvokeCancelPayload",
    "InvokeRequestPayload",
    "NodePairRequestShape",
    "NodePairResolved",
    "node_describe",
    "node_event",
    "node_invoke",
    "node_invoke_result",
    "node_list",
    "node_pair_approve",
    "node_pair_list",
    "node_pair_reject",
    "node_plugin_tools_update",
    "node_rename",
    "node_runner_inventory_update",
    "node_skills_update",
]

logger = logging.getLogger(__name__)

NonEmpty = Annotated[str, StringConstraints(min_length=1)]


def nodes_of(ctx: CallContext) -> NodeService:
    """Return the gateway's node service.

    Raises:
        Unavailable: the gateway runs without one (no state store).
    """
    service = ctx.services.nodes
    if service is None:
        raise Unavailable("nodes need the state store; start the gateway with a home directory")
    return service


# -- shapes ---------------------------------------------------------------------------


class NodeEntry(Result):
    """One node as `node.list` and `node.describe` show it."""

    nodeId: str
    displayName: str | None = None
    platform: str | None = None
    deviceFamily: str | None = None
    modelIdentifier: str | None = None
    version: str | None = None
    remoteIp: str | None = None
    caps: list[str]
    commands: list[str]
    permissions: dict[str, bool]
    pathEnv: str | None = None
    paired: bool
    connected: bool
    connectedAtMs: int | None = None


class NodeListResult(Result):
    """Result of `node.list`."""

    ts: int
    nodes: list[NodeEntry]


class NodeDescribeResult(NodeEntry):
    """Result of `node.describe`: the entry, and the inventories the node published."""

    ts: int
    runnerInventory: Any = None
    skills: Any = None
    pluginTools: Any = None


class NodeIdParams(Params):
    """Params naming a node."""

    nodeId: NonEmpty


class RenameParams(Params):
    """Params of `node.rename`."""

    nodeId: NonEmpty
    displayName: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class RenameResult(Result):
    """Result of `node.rename`."""

    nodeId: str
    displayName: str


class InvokeParams(Params):
    """Params of `node.invoke` (OpenClaw's turn-source fields are accepted and ignored)."""

    nodeId: NonEmpty
    command: NonEmpty
    params: Any = None
    timeoutMs: Annotated[int, Field(ge=0)] | None = None
    idempotencyKey: IdempotencyKey
    sessionKey: NonEmpty | None = None
    turnSourceChannel: str | None = None
    turnSourceTo: str | None = None
    turnSourceAccountId: str | None = None
    turnSourceThreadId: str | int | None = None


class InvokeResult(Result):
    """Result of `node.invoke`."""

    ok: bool
    nodeId: str
    command: str
    payload: Any = None
    payloadJSON: str | None = None


class InvokeResultError(Params):
    """The error a node reports for an invoke."""

    code: NonEmpty | None = None
    message: NonEmpty | None = None


class InvokeResultParams(Params):
    """Params of `node.invoke.result`."""

    id: NonEmpty
    nodeId: NonEmpty
    ok: bool
    payload: Any = None
    payloadJSON: str | None = None
    error: InvokeResultError | None = None


class OkResult(Result):
    """`{ok: true}`."""

    ok: bool


class EventParams(Params):
    """Params of `node.event`."""

    event: NonEmpty
    payload: Any = None
    payloadJSON: str | None = None


class EventResult(Result):
    """Result of `node.event`."""

    ok: bool
    event: str
    handled: bool
    reason: str | None = None


class RunnerInventoryParams(Params):
    """Params of `node.runnerInventory.update` (OpenClaw's node host sends it on connect)."""

    protocolFeatures: list[str]
    workerHost: dict[str, Any] | None = None
    workerRuns: Any = None


class SkillsParams(Params):
    """Params of `node.skills.update`."""

    skills: Annotated[list[dict[str, Any]], Field(max_length=64)]


class PluginToolsParams(Params):
    """Params of `node.pluginTools.update`."""

    tools: list[dict[str, Any]]


class InvokeRequestPayload(Result):
    """The targeted `node.invoke.request` event a node receives."""

    id: str
    nodeId: str
    command: str
    paramsJSON: str | None
    timeoutMs: int
    idempotencyKey: str


class InvokeCancelPayload(Result):
    """The targeted `node.invoke.cancel` event (clawgate's `id` and OpenClaw's `invokeId`)."""

    id: str
    invokeId: str
    nodeId: str


class NodePairRequestShape(Result):
    """A node's command surface waiting for approval (also `node.pair.requested`)."""

    requestId: str
    nodeId: str
    clientId: str | None = None
    clientMode: str | None = None
    displayName: str | None = None
    platform: str | None = None
    version: str | None = None
    deviceFamily: str | None = None
    modelIdentifier: str | None = None
    caps: list[str]
    commands: list[str]
    requiredApproveScopes: list[str]
    remoteIp: str | None = None
    isRepair: bool
    ts: int


class PairedNodeShape(Result):
    """A node with an approved command surface."""

    nodeId: str
    displayName: str | None = None
    commands: list[str]
    approvedAtMs: int | None = None


class NodePairListResult(Result):
    """Result of `node.pair.list`."""

    pending: list[NodePairRequestShape]
    paired: list[PairedNodeShape]


class RequestIdParams(Params):
    """Params naming a surface request."""

    requestId: NonEmpty


class NodePairApproveResult(Result):
    """Result of `node.pair.approve`."""

    requestId: str
    node: PairedNodeShape


class NodePairRejectResult(Result):
    """Result of `node.pair.reject`."""

    requestId: str
    nodeId: str


class NodePairResolved(Result):
    """The `node.pair.resolved` payload."""

    requestId: str
    nodeId: str
    decision: str
    ts: int


# -- operators ------------------------------------------------------------------------


@method("node.list", params=EmptyParams, result=NodeListResult, scope=READ)
def node_list(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """List paired and connected nodes; paired ones stay listed while offline."""
    service = nodes_of(ctx)
    entries = (service.entry(node_id, admin=ctx.is_admin) for node_id in service.node_ids())
    return {"ts": ctx.services.clock(), "nodes": [e for e in entries if e is not None]}


@method("node.describe", params=NodeIdParams, result=NodeDescribeResult, scope=READ)
def node_describe(ctx: CallContext, params: NodeIdParams) -> dict[str, Any]:
    """Describe one node, with the inventories it published last."""
    service = nodes_of(ctx)
    entry = service.entry(params.nodeId, admin=ctx.is_admin)
    if entry is None:
        raise InvalidRequest(f"unknown node: {params.nodeId}; list nodes with node.list")
    return {"ts": ctx.services.clock(), **entry, **service.inventory(params.nodeId)}


@method("node.rename", params=RenameParams, result=RenameResult, scope=PAIRING)
async def node_rename(ctx: CallContext, params: RenameParams) -> dict[str, Any]:
    """Give a node the name operators see."""
    service = nodes_of(ctx)
    if service.entry(params.nodeId, admin=False) is None:
        raise InvalidRequest(f"unknown node: {params.nodeId}; list nodes with node.list")
    surface = await service.rename(params.nodeId, params.displayName)
    return {"nodeId": surface.node_id, "displayName": params.displayName}


@method(
    "node.invoke",
    params=InvokeParams,
    result=InvokeResult,
    scope=WRITE,
    idempotency=Idempotency.REQUIRED,
)
async def node_invoke(ctx: CallContext, params: InvokeParams) -> dict[str, Any]:
    """Run a command on a node and return its outcome."""
    timeout_ms = params.timeoutMs or NODE_INVOKE_DEFAULT_TIMEOUT_MS
    return await nodes_of(ctx).invoke(
        ctx.caller,
        params.nodeId,
        params.command,
        params.params,
        min(timeout_ms, NODE_INVOKE_MAX_TIMEOUT_MS),
        params.idempotencyKey,
    )


@method("node.pair.list", params=EmptyParams, result=NodePairListResult, scope=PAIRING)
def node_pair_list(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """List command surfaces waiting for approval, and the approved ones."""
    registry = nodes_of(ctx).surfaces
    registry.expire(ctx.services.clock())
    return {
        "pending": [request.payload() for request in registry.pending.values()],
        "paired": [_paired(s) for s in registry.surfaces.values() if s.approved_at_ms is not None],
    }


def _paired(surface: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"nodeId": surface.node_id, "commands": list(surface.commands)}
    if surface.display_name is not None:
        entry["displayName"] = surface.display_name
    if surface.approved_at_ms is not None:
        entry["approvedAtMs"] = surface.approved_at_ms
    return entry


@method("node.pair.approve", params=RequestIdParams, result=NodePairApproveResult, scope=ADMIN)
async def node_pair_approve(ctx: CallContext, params: RequestIdParams) -> dict[str, Any]:
    """Approve a node's command surface (admin: it lets operators run what it offers)."""
    try:
        surface = await nodes_of(ctx).approve_surface(params.requestId)
    except KeyError:
        raise InvalidRequest("unknown or expired node pairing request; list them again") from None
    return {"requestId": params.requestId, "node": _paired(surface)}


@method("node.pair.reject", params=RequestIdParams, result=NodePairRejectResult, scope=PAIRING)
async def node_pair_reject(ctx: CallContext, params: RequestIdParams) -> dict[str, Any]:
    """Reject a node's command surface; what was approved before stays approved."""
    try:
        request = await nodes_of(ctx).reject_surface(params.requestId)
    except KeyError:
        raise InvalidRequest("unknown or expired node pairing request; list them again") from None
    return {"requestId": params.requestId, "nodeId": request.node_id}


# -- nodes ----------------------------------------------------------------------------


@method("node.invoke.result", params=InvokeResultParams, result=OkResult, role=MethodRole.NODE)
def node_invoke_result(ctx: CallContext, params: InvokeResultParams) -> dict[str, Any]:
    """Take a node's answer to an invoke; a late one is acknowledged and dropped."""
    nodes_of(ctx).result(ctx.caller, params)
    return {"ok": True}


@method("node.event", params=EventParams, result=EventResult, role=MethodRole.NODE)
def node_event(ctx: CallContext, params: EventParams) -> dict[str, Any]:
    """Acknowledge and log a node event; v1 acts on none of them."""
    node_id = ctx.caller.device_id or "?"
    # Info the first time per node and event, debug after: OpenClaw's node host sends
    # `node.host.stats` every 30 s, which would fill the log.
    first = nodes_of(ctx).first_event(node_id, params.event)
    level = logging.INFO if first else logging.DEBUG
    logger.log(level, "node %s event %s (not handled)", node_id[:16], params.event)
    return {"ok": True, "event": params.event, "handled": False}


def _keep(ctx: CallContext, kind: str, value: Any) -> dict[str, Any]:
    node_id = ctx.caller.device_id
    if node_id is not None:
        nodes_of(ctx).update_inventory(node_id, kind, value)
    return {"ok": True}


@method(
    "node.runnerInventory.update",
    params=RunnerInventoryParams,
    result=OkResult,
    role=MethodRole.NODE,
)
def node_runner_inventory_update(ctx: CallContext, params: RunnerInventoryParams) -> dict[str, Any]:
    """Keep the node's runner inventory (shown by `node.describe`)."""
    return _keep(ctx, "runnerInventory", params.model_dump(exclude_none=True))


@method("node.skills.update", params=SkillsParams, result=OkResult, role=MethodRole.NODE)
def node_skills_update(ctx: CallContext, params: SkillsParams) -> dict[str, Any]:
    """Keep the node's skill catalog (shown by `node.describe`)."""
    return _keep(ctx, "skills", params.skills)


@method("node.pluginTools.update", params=PluginToolsParams, result=OkResult, role=MethodRole.NODE)
def node_plugin_tools_update(ctx: CallContext, params: PluginToolsParams) -> dict[str, Any]:
    """Keep the node's plugin tool catalog (shown by `node.describe`)."""
    return _keep(ctx, "pluginTools", params.tools)
