"""Sessions: list, get, create, reset, delete, subscribe, unsubscribe (spec §10.4)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import Field

from ...agents.sessions import MAIN_SESSION_KEY, row
from ...protocol.errors import InvalidRequest
from ...protocol.limits import LIST_LIMIT_MAX
from ...protocol.scopes import ADMIN, READ, WRITE
from ..context import CallContext
from ..registry import Idempotency, method
from ._common import (
    EmptyParams,
    IdempotencyKey,
    Params,
    Result,
    SessionKey,
    agents_of,
    check_agent_id,
    resolve_key,
)
from .agent import check_message

__all__ = [
    "SessionsChangedPayload",
    "sessions_create",
    "sessions_delete",
    "sessions_get",
    "sessions_list",
    "sessions_reset",
    "sessions_subscribe",
    "sessions_unsubscribe",
]


class SessionRow(Result):
    """One session."""

    key: str
    sessionId: str
    agentId: str
    label: str | None = None
    model: str | None = None
    createdAt: int
    updatedAt: int
    messageCount: int


class SessionsListParams(Params):
    """Params of `sessions.list`; the last six are accepted and ignored."""

    limit: Annotated[int, Field(ge=1, le=LIST_LIMIT_MAX)] | None = None
    agentId: str | None = None
    search: str | None = None
    label: str | None = None
    activeMinutes: Annotated[int, Field(ge=1)] | None = None
    includeGlobal: bool | None = None
    includeUnknown: bool | None = None
    includeDerivedTitles: bool | None = None
    includeLastMessage: bool | None = None
    spawnedBy: str | None = None


class SessionsListResult(Result):
    """Result of `sessions.list`."""

    ts: int
    count: int
    sessions: list[SessionRow]


class KeyParams(Params):
    """Params naming one session."""

    key: SessionKey


class SessionsGetResult(Result):
    """Result of `sessions.get`."""

    ts: int
    session: SessionRow


class SessionsCreateParams(Params):
    """Params of `sessions.create`."""

    key: SessionKey | None = None
    agentId: str | None = None
    label: Annotated[str, Field(max_length=256)] | None = None
    model: Annotated[str, Field(max_length=256)] | None = None
    parentSessionKey: SessionKey | None = None
    task: str | None = None
    message: str | None = None
    idempotencyKey: IdempotencyKey | None = None


class SessionsCreateResult(Result):
    """Result of `sessions.create`."""

    ok: bool
    key: str
    sessionId: str
    session: SessionRow
    runId: str | None = None


class SessionsResetResult(Result):
    """Result of `sessions.reset`."""

    ok: bool
    key: str
    sessionId: str


class SessionsDeleteResult(Result):
    """Result of `sessions.delete`."""

    ok: bool
    key: str
    deleted: bool


class OkOnly(Result):
    """`{ok:true}`."""

    ok: bool


class SessionsChangedPayload(Result):
    """The `sessions.changed` event (row fields absent for `deleted`)."""

    sessionKey: str
    reason: Literal["created", "updated", "reset", "deleted"]
    key: str | None = None
    sessionId: str | None = None
    agentId: str | None = None
    label: str | None = None
    model: str | None = None
    createdAt: int | None = None
    updatedAt: int | None = None
    messageCount: int | None = None


@method("sessions.list", params=SessionsListParams, result=SessionsListResult, scope=READ)
def sessions_list(ctx: CallContext, params: SessionsListParams) -> dict[str, Any]:
    """Return sessions, most recently updated first."""
    service = agents_of(ctx)
    check_agent_id(params.agentId)
    now = ctx.services.clock()
    records = service.sessions.all()
    if params.search:
        needle = params.search.lower()
        records = [
            r for r in records if needle in r.key.lower() or needle in (r.label or "").lower()
        ]
    if params.label is not None:
        records = [r for r in records if r.label == params.label]
    if params.activeMinutes is not None:
        cutoff = now - params.activeMinutes * 60_000
        records = [r for r in records if r.updated_at >= cutoff]
    records = records[: params.limit or 100]
    return {"ts": now, "count": len(records), "sessions": [row(r) for r in records]}


@method("sessions.get", params=KeyParams, result=SessionsGetResult, scope=READ)
def sessions_get(ctx: CallContext, params: KeyParams) -> dict[str, Any]:
    """Return one session."""
    key = resolve_key(params.key)
    record = agents_of(ctx).sessions.get(key)
    if record is None:
        raise InvalidRequest(f"unknown session {key}; call sessions.list for the keys")
    return {"ts": ctx.services.clock(), "session": row(record)}


@method(
    "sessions.create",
    params=SessionsCreateParams,
    result=SessionsCreateResult,
    scope=WRITE,
    idempotency=Idempotency.OPTIONAL,
)
async def sessions_create(ctx: CallContext, params: SessionsCreateParams) -> dict[str, Any]:
    """Create a session (a key is generated when none is given); optionally start a run."""
    service = agents_of(ctx)
    check_agent_id(params.agentId)
    if params.message is not None:
        check_message(params.message, None, service.settings.max_input_chars)
    agent_id = params.agentId or "main"
    key = resolve_key(params.key) if params.key else f"agent:{agent_id}:{uuid.uuid4().hex[:12]}"
    if service.sessions.get(key) is not None:
        raise InvalidRequest(f"session {key} exists already; pick another key")
    record = await service.sessions.create(key, label=params.label, model=params.model)
    if params.task:
        await service.sessions.append(record, "system", params.task)
    result: dict[str, Any] = {"ok": True, "key": key, "sessionId": record.session_id}
    if params.message is not None:
        run = await service.start_run(
            record, params.message, service.new_run_id(), service.settings.timeout_s
        )
        result["runId"] = run.run_id
    result["session"] = row(record)
    return result


@method("sessions.reset", params=KeyParams, result=SessionsResetResult, scope=ADMIN)
async def sessions_reset(ctx: CallContext, params: KeyParams) -> dict[str, Any]:
    """Abort the session's runs, give it a new id and an empty transcript."""
    service = agents_of(ctx)
    key = resolve_key(params.key)
    if service.sessions.get(key) is None:
        raise InvalidRequest(f"unknown session {key}; call sessions.list for the keys")
    service.runs.abort_session(key)
    record = await service.sessions.reset(key)
    if record is None:
        raise InvalidRequest(f"unknown session {key}; call sessions.list for the keys")
    return {"ok": True, "key": key, "sessionId": record.session_id}


@method("sessions.delete", params=KeyParams, result=SessionsDeleteResult, scope=ADMIN)
async def sessions_delete(ctx: CallContext, params: KeyParams) -> dict[str, Any]:
    """Abort the session's runs and remove it with its transcript."""
    service = agents_of(ctx)
    key = resolve_key(params.key)
    if key == MAIN_SESSION_KEY:
        raise InvalidRequest("the main session cannot be deleted; use sessions.reset to clear it")
    service.runs.abort_session(key)
    deleted = await service.sessions.delete(key)
    return {"ok": True, "key": key, "deleted": deleted}


@method("sessions.subscribe", params=EmptyParams, result=OkOnly, scope=READ)
def sessions_subscribe(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """Send `sessions.changed` to this connection until it unsubscribes or closes."""
    agents_of(ctx).session_subscribers.add(ctx.caller.conn_id)
    return {"ok": True}


@method("sessions.unsubscribe", params=EmptyParams, result=OkOnly, scope=READ)
def sessions_unsubscribe(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """Stop sending `sessions.changed` to this connection."""
    agents_of(ctx).session_subscribers.discard(ctx.caller.conn_id)
    return {"ok": True}
