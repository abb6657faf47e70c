"""Pairing and device-token methods (spec §10.6)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from pydantic import StringConstraints

from ...protocol.detail_codes import MISSING_SCOPE
from ...protocol.errors import Forbidden, InvalidRequest
from ...protocol.scopes import ADMIN, PAIRING, scope_satisfied
from ..context import CallContext
from ..registry import method
from ._common import EmptyParams, Params, Result

__all__ = [
    "DevicePairResolved",
    "PendingRequestShape",
    "device_pair_approve",
    "device_pair_list",
    "device_pair_reject",
    "device_pair_remove",
    "device_token_revoke",
    "device_token_rotate",
]

NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class RequestIdParams(Params):
    """Params naming a pairing request."""

    requestId: NonEmpty


class DeviceIdParams(Params):
    """Params naming a paired device."""

    deviceId: NonEmpty


class RotateParams(Params):
    """Params of `device.token.rotate`."""

    deviceId: NonEmpty
    role: NonEmpty
    scopes: list[str] | None = None


class RevokeParams(Params):
    """Params of `device.token.revoke`."""

    deviceId: NonEmpty
    role: NonEmpty


class PendingRequestShape(Result):
    """A pairing request (also the `device.pair.requested` payload)."""

    requestId: str
    deviceId: str
    publicKey: str
    role: str
    roles: list[str]
    scopes: list[str]
    reason: Literal["not-paired", "role-upgrade", "scope-upgrade", "metadata-upgrade"]
    isRepair: bool
    ts: int
    displayName: str | None = None
    platform: str | None = None
    deviceFamily: str | None = None
    clientId: str | None = None
    clientMode: str | None = None
    remoteIp: str | None = None


class TokenSummary(Result):
    """A device token without its value."""

    role: str
    scopes: list[str]
    createdAtMs: int
    rotatedAtMs: int | None = None
    revokedAtMs: int | None = None
    lastUsedAtMs: int | None = None


class PairedDeviceSummary(Result):
    """A paired device; tokens are listed without values."""

    deviceId: str
    publicKey: str
    roles: list[str]
    approvedScopes: list[str]
    createdAtMs: int
    approvedAtMs: int
    tokens: list[TokenSummary]
    displayName: str | None = None
    platform: str | None = None
    deviceFamily: str | None = None
    clientId: str | None = None
    clientMode: str | None = None
    remoteIp: str | None = None
    # OpenClaw's listing fields (device.pair.list only).
    role: str | None = None
    scopes: list[str] | None = None
    connected: bool | None = None
    lastSeenAtMs: int | None = None


class PairListResult(Result):
    """Result of `device.pair.list`."""

    pending: list[PendingRequestShape]
    paired: list[PairedDeviceSummary]


class ApproveResult(Result):
    """Result of `device.pair.approve`."""

    requestId: str
    device: PairedDeviceSummary


class RejectResult(Result):
    """Result of `device.pair.reject`."""

    requestId: str
    deviceId: str


class RemoveResult(Result):
    """Result of `device.pair.remove`."""

    ok: bool
    deviceId: str


class RotateResult(Result):
    """Result of `device.token.rotate`; `token` only for the device itself."""

    deviceId: str
    role: str
    scopes: list[str]
    rotatedAtMs: int
    token: str | None = None


class RevokeResult(Result):
    """Result of `device.token.revoke`."""

    deviceId: str
    role: str
    revokedAtMs: int


class DevicePairResolved(Result):
    """The `device.pair.resolved` payload."""

    requestId: str
    deviceId: str
    decision: Literal["approved", "rejected"]
    ts: int


def _missing_scope(scope: str) -> Forbidden:
    return Forbidden(
        f"missing scope: {scope}",
        details={"code": MISSING_SCOPE, "missingScope": scope, "requiredScopes": [scope]},
    )


@method("device.pair.list", params=EmptyParams, result=PairListResult, scope=PAIRING)
def device_pair_list(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """List pending requests and paired devices; never token values."""
    registry = ctx.services.pairing.registry
    registry.expire(ctx.services.clock())
    # Present = connected now (presence lists every client but `cli`/`probe` ones).
    present = {e.get("deviceId") for e in ctx.services.presence.entries() if e.get("deviceId")}
    return {
        "pending": [request.payload() for request in registry.pending.values()],
        "paired": [_listed(record.summary(), present) for record in registry.devices.values()],
    }


def _listed(summary: dict[str, Any], present: set[Any]) -> dict[str, Any]:
    """Add the fields OpenClaw's device list reads: role, scopes, connected, last seen."""
    used = [t["lastUsedAtMs"] for t in summary["tokens"] if "lastUsedAtMs" in t]
    return summary | {
        "role": summary["roles"][0] if summary["roles"] else "operator",
        "scopes": summary["approvedScopes"],
        "connected": summary["deviceId"] in present,
        "lastSeenAtMs": max(used, default=summary["approvedAtMs"]),
    }


@method("device.pair.approve", params=RequestIdParams, result=ApproveResult, scope=PAIRING)
async def device_pair_approve(ctx: CallContext, params: RequestIdParams) -> dict[str, Any]:
    """Approve a pairing request within the approver's own scopes."""
    service = ctx.services.pairing
    now = ctx.services.clock()
    service.registry.expire(now)
    request = service.registry.pending.get(params.requestId)
    if request is None:
        raise InvalidRequest("unknown or expired pairing request; list them again")
    held = ctx.caller.scopes
    if "node" in request.roles and not scope_satisfied(held, ADMIN):
        raise _missing_scope(ADMIN)
    for scope in request.scopes:
        if not scope_satisfied(held, scope):
            raise _missing_scope(scope)
    record = service.registry.approve(params.requestId, now)

    async def commit() -> None:
        await service.save(device=record, dropped=[params.requestId])
        service.announce_resolved(params.requestId, record.device_id, "approved")

    # Shielded: a caller that leaves mid-write must not lose the announcement.
    await asyncio.shield(commit())
    return {"requestId": params.requestId, "device": record.summary()}


@method("device.pair.reject", params=RequestIdParams, result=RejectResult, scope=PAIRING)
async def device_pair_reject(ctx: CallContext, params: RequestIdParams) -> dict[str, Any]:
    """Reject a pairing request."""
    service = ctx.services.pairing
    try:
        request = service.registry.reject(params.requestId, ctx.services.clock())
    except KeyError:
        raise InvalidRequest("unknown or expired pairing request; list them again") from None
    service.announce_resolved(params.requestId, request.device_id, "rejected")
    await asyncio.shield(service.save(dropped=[params.requestId]))
    return {"requestId": params.requestId, "deviceId": request.device_id}


@method("device.pair.remove", params=DeviceIdParams, result=RemoveResult, scope=PAIRING)
async def device_pair_remove(ctx: CallContext, params: DeviceIdParams) -> dict[str, Any]:
    """Forget a device and its tokens, and close its sockets with 4001."""
    service = ctx.services.pairing
    device_id = params.deviceId.lower()
    try:
        service.registry.remove(device_id)
    except KeyError:
        raise InvalidRequest(f"unknown device: {params.deviceId}") from None
    # Sockets close at once, before the write: a removed device keeps nothing open.
    service.close_device_sockets(device_id, "device removed", caller=ctx.caller)
    await asyncio.shield(service.save(removed_device=device_id))
    if ctx.services.nodes is not None:  # a node's approved commands go with it
        await asyncio.shield(ctx.services.nodes.forget(device_id))
    return {"ok": True, "deviceId": device_id}


def _check_token_authority(ctx: CallContext, device_id: str, role: str, scopes: list[str]) -> None:
    """Non-admins act only on their own device, within their own scopes, for operator."""
    held = ctx.caller.scopes
    if scope_satisfied(held, ADMIN):
        return
    if role != "operator":
        raise _missing_scope(ADMIN)
    if ctx.caller.device_id != device_id:
        raise Forbidden("only operator.admin may manage another device's tokens")
    for scope in scopes:
        if not scope_satisfied(held, scope):
            raise _missing_scope(scope)


@method("device.token.rotate", params=RotateParams, result=RotateResult, scope=PAIRING)
async def device_token_rotate(ctx: CallContext, params: RotateParams) -> dict[str, Any]:
    """Replace a device's token for a role; the value goes only to that device itself."""
    service = ctx.services.pairing
    device_id = params.deviceId.lower()
    record = service.registry.devices.get(device_id)
    if record is None or params.role not in record.roles:
        raise InvalidRequest(f"unknown device or role: {params.deviceId} {params.role}")
    current = record.tokens.get(params.role)
    wanted = params.scopes if params.scopes is not None else list(current.scopes if current else ())
    _check_token_authority(ctx, device_id, params.role, wanted)
    try:
        value, token = service.registry.rotate(device_id, params.role, wanted, ctx.services.clock())
    except ValueError:
        raise InvalidRequest("scopes beyond the device's approved scopes") from None
    await service.save(device=service.registry.devices[device_id])
    result: dict[str, Any] = {
        "deviceId": device_id,
        "role": params.role,
        "scopes": list(token.scopes),
        "rotatedAtMs": token.rotated_at_ms or token.created_at_ms,
    }
    caller = ctx.caller
    if caller.device_id == device_id and caller.role.value == params.role:
        result["token"] = value
    return result


@method("device.token.revoke", params=RevokeParams, result=RevokeResult, scope=PAIRING)
async def device_token_revoke(ctx: CallContext, params: RevokeParams) -> dict[str, Any]:
    """Revoke a device's token for a role and close its sockets in that role with 4001."""
    service = ctx.services.pairing
    device_id = params.deviceId.lower()
    record = service.registry.devices.get(device_id)
    if record is None or params.role not in record.tokens:
        raise InvalidRequest(f"unknown device or role: {params.deviceId} {params.role}")
    _check_token_authority(ctx, device_id, params.role, [])
    token = service.registry.revoke(device_id, params.role, ctx.services.clock())
    service.close_device_sockets(
        device_id, "device token revoked", role=params.role, caller=ctx.caller
    )
    await asyncio.shield(service.save(device=service.registry.devices[device_id]))
    return {"deviceId": device_id, "role": params.role, "revokedAtMs": token.revoked_at_ms}
