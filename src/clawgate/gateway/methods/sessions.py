"""Sessions: list, get, create, reset, delete, subscribe, unsubscribe (spec §10.4)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import Field

from ...agents.sessions import MAIN_SESSION_KEY, row
from ...protocol.errors import InvalidRequest
from ...protocol.limits import SESSIONS_LIST_LIMIT_MAX
from ...protocol.scopes import ADMIN, READ, WRITE
from ..context import CallContext
from ..registry import Idempotency, method
from ._common import (
    EmptyParams,
    IdempotencyKey,
    Ignored,
    Params,
    Result,
    SessionKey,
    agents_of,
    check_agent_id,
    resolve_key,
    session_defaults,
)
from .agent import check_message

__all__ = [
    "SessionMessagePayload",
    "SessionsChangedPayload",
    "sessions_create",
    "sessions_delete",
    "sessions_describe",
    "sessions_get",
    "sessions_list",
    "sessions_messages_subscribe",
    "sessions_messages_unsubscribe",
    "sessions_observer_visibility",
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
    """Params of `sessions.list` (OpenClaw 2026.9.6's fields; those marked Ignored do nothing)."""

    # Any size is accepted and clamped to SESSIONS_LIST_LIMIT_MAX.
    limit: Annotated[int, Field(ge=1)] | None = None
    offset: Annotated[int, Field(ge=0)] | None = None
    agentId: str | None = None
    search: str | None = None
    label: str | None = None
    activeMinutes: Annotated[int, Field(ge=1)] | None = None
    sortBy: Literal["updatedAt", "lastInteractionAt", "activity"] | None = None
    # Every clawgate session belongs to a configured agent; none is archived.
    configuredAgentsOnly: bool | None = None
    # true: only archived ones (none); "all": archived or not (all of them).
    archived: bool | Literal["all"] | None = None
    includeGlobal: Ignored = None
    includeUnknown: Ignored = None
    includeDerivedTitles: Ignored = None
    includeLastMessage: Ignored = None
    includeActivitySummary: Ignored = None
    spawnedBy: Ignored = None
    activeOnly: Ignored = None
    requireLastInteraction: Ignored = None
    excludeSubagents: Ignored = None
    excludeCron: Ignored = None
    excludeSystem: Ignored = None
    projectId: Ignored = None
    workspaceDir: Ignored = None
    group: Ignored = None
    pinned: Ignored = None
    boardFace: Ignored = None
    hasBoard: Ignored = None
    creatorId: Ignored = None
    ownerId: Ignored = None
    ownerFirst: Ignored = None
    involvingMe: Ignored = None
    profileRelation: Ignored = None
    involvingProfileId: Ignored = None
    includePeople: Ignored = None


class SessionDefaults(Result):
    """The model new sessions use (OpenClaw's `defaults`)."""

    modelProvider: str
    model: str


class SessionsListResult(Result):
    """Result of `sessions.list`."""

    ts: int
    count: int
    totalCount: int
    hasMore: bool
    nextOffset: int | None = None
    defaults: SessionDefaults
    sessions: list[SessionRow]


class KeyParams(Params):
    """Params naming one session."""

    key: SessionKey


class ResetParams(KeyParams):
    """Params of `sessions.reset`."""

    agentId: str | None = None
    reason: Ignored = None
    expectedSessionId: Ignored = None


class DeleteParams(KeyParams):
    """Params of `sessions.delete`; the transcript always goes with the session."""

    agentId: str | None = None
    deleteTranscript: Ignored = None
    expectedSessionId: Ignored = None
    expectedLifecycleRevision: Ignored = None
    expectedSessionUpdatedAt: Ignored = None
    emitLifecycleHooks: Ignored = None
    archivedOnly: Ignored = None


class DescribeParams(KeyParams):
    """Params of `sessions.describe`."""

    agentId: str | None = None
    includeDerivedTitles: Ignored = None
    includeLastMessage: Ignored = None


class DescribeResult(Result):
    """Result of `sessions.describe`: the row, or null for an unknown key (as OpenClaw)."""

    session: SessionRow | None


class MessagesSubscribeParams(KeyParams):
    """Params of `sessions.messages.subscribe` / `.unsubscribe`."""

    agentId: str | None = None
    # Approvals of the session's runs: clawgate's runs ask for none, so none are replayed.
    includeApprovals: Literal[True] | None = None


class ApprovalReplay(Result):
    """The session's pending approvals at subscribe time."""

    sessionKey: str
    updatedAtMs: int
    approvals: list[dict[str, Any]]
    truncated: bool


class MessagesSubscribeResult(Result):
    """Result of `sessions.messages.subscribe` / `.unsubscribe`."""

    subscribed: bool
    key: str
    approvalReplay: ApprovalReplay | None = None


class ObserverVisibilityParams(Params):
    """Params of `sessions.observer.visibility`: whether the client's window is visible."""

    visible: bool


class SessionMessagePayload(Result):
    """The `session.message` event: a message committed to a followed session's transcript."""

    sessionKey: str
    agentId: str
    message: dict[str, Any]
    messageId: str
    messageSeq: int
    runId: str | None = None


class SessionsGetResult(Result):
    """Result of `sessions.get`."""

    ts: int
    session: SessionRow


class SessionsCreateParams(Params):
    """Params of `sessions.create`; OpenClaw's other fields are accepted and ignored."""

    key: SessionKey | None = None
    agentId: str | None = None
    label: Annotated[str, Field(max_length=256)] | None = None
    model: Annotated[str, Field(max_length=256)] | None = None
    parentSessionKey: SessionKey | None = None
    task: str | None = None
    message: str | None = None
    idempotencyKey: IdempotencyKey | None = None
    displayName: Ignored = None
    titleSource: Ignored = None
    category: Ignored = None
    agentRuntime: Ignored = None
    contextWindow: Ignored = None
    thinkingLevel: Ignored = None
    fastMode: Ignored = None
    permissionMode: Ignored = None
    toolOverrides: Ignored = None
    incognito: Ignored = None
    visibility: Ignored = None
    catalogId: Ignored = None
    spawnDepth: Ignored = None
    fork: Ignored = None
    forkFrom: Ignored = None
    emitCommandHooks: Ignored = None
    succeedsParent: Ignored = None
    timeoutMs: Ignored = None
    mentions: Ignored = None
    attachments: Ignored = None
    projectId: Ignored = None
    projectGitUrl: Ignored = None
    repository: Ignored = None
    worktree: Ignored = None
    worktreeSource: Ignored = None
    worktreeBaseRef: Ignored = None
    worktreeName: Ignored = None
    execNode: Ignored = None
    cwd: Ignored = None


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
    """Return sessions, most recently updated first, a page at a time (`offset`)."""
    service = agents_of(ctx)
    check_agent_id(params.agentId)
    now = ctx.services.clock()
    records = service.sessions.all()
    if params.archived is True:
        records = []
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
    total = len(records)
    offset = params.offset or 0
    limit = min(params.limit or 100, SESSIONS_LIST_LIMIT_MAX)
    page = records[offset : offset + limit]
    result: dict[str, Any] = {
        "ts": now,
        "count": len(page),
        "totalCount": total,
        "hasMore": offset + len(page) < total,
        "defaults": session_defaults(ctx),
        "sessions": [row(r) for r in page],
    }
    if result["hasMore"]:
        result["nextOffset"] = offset + len(page)
    return result


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


@method("sessions.reset", params=ResetParams, result=SessionsResetResult, scope=ADMIN)
async def sessions_reset(ctx: CallContext, params: ResetParams) -> dict[str, Any]:
    """Abort the session's runs, give it a new id and an empty transcript."""
    service = agents_of(ctx)
    check_agent_id(params.agentId)
    key = resolve_key(params.key)
    if service.sessions.get(key) is None:
        raise InvalidRequest(f"unknown session {key}; call sessions.list for the keys")
    service.runs.abort_session(key)
    record = await service.sessions.reset(key)
    if record is None:
        raise InvalidRequest(f"unknown session {key}; call sessions.list for the keys")
    return {"ok": True, "key": key, "sessionId": record.session_id}


@method("sessions.delete", params=DeleteParams, result=SessionsDeleteResult, scope=ADMIN)
async def sessions_delete(ctx: CallContext, params: DeleteParams) -> dict[str, Any]:
    """Abort the session's runs and remove it with its transcript."""
    service = agents_of(ctx)
    check_agent_id(params.agentId)
    key = resolve_key(params.key)
    if key == MAIN_SESSION_KEY:
        raise InvalidRequest("the main session cannot be deleted; use sessions.reset to clear it")
    service.runs.abort_session(key)
    deleted = await service.sessions.delete(key)
    return {"ok": True, "key": key, "deleted": deleted}


class SubscribeResult(Result):
    """Result of `sessions.subscribe`; OpenClaw's clients read `subscribed` (and `list`)."""

    ok: bool
    subscribed: bool
    list: SessionsListResult | None = None


@method("sessions.subscribe", params=SessionsListParams, result=SubscribeResult, scope=READ)
def sessions_subscribe(ctx: CallContext, params: SessionsListParams) -> dict[str, Any]:
    """Send `sessions.changed` to this connection until it unsubscribes or closes.

    With `sessions.list` params (as OpenClaw's clients send) the first page comes along,
    taken in the same step as the subscription, so no change falls between them.
    """
    agents_of(ctx).session_subscribers.add(ctx.caller.conn_id)
    result: dict[str, Any] = {"ok": True, "subscribed": True}
    if params.model_fields_set:
        result["list"] = sessions_list(ctx, params)
    return result


@method("sessions.unsubscribe", params=EmptyParams, result=OkOnly, scope=READ)
def sessions_unsubscribe(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """Stop sending `sessions.changed` to this connection."""
    agents_of(ctx).session_subscribers.discard(ctx.caller.conn_id)
    return {"ok": True}


@method("sessions.describe", params=DescribeParams, result=DescribeResult, scope=READ)
def sessions_describe(ctx: CallContext, params: DescribeParams) -> dict[str, Any]:
    """Return one session's row, or `session:null` when there is no such session."""
    check_agent_id(params.agentId)
    record = agents_of(ctx).sessions.get(resolve_key(params.key))
    return {"session": None if record is None else row(record)}


@method(
    "sessions.messages.subscribe",
    params=MessagesSubscribeParams,
    result=MessagesSubscribeResult,
    scope=READ,
)
def sessions_messages_subscribe(
    ctx: CallContext, params: MessagesSubscribeParams
) -> dict[str, Any]:
    """Send this connection a `session.message` for each message the session stores."""
    check_agent_id(params.agentId)
    key = resolve_key(params.key)
    agents_of(ctx).follow_messages(ctx.caller.conn_id, key, follow=True)
    result: dict[str, Any] = {"subscribed": True, "key": key}
    if params.includeApprovals:
        replay = {"sessionKey": key, "updatedAtMs": ctx.services.clock()}
        result["approvalReplay"] = replay | {"approvals": [], "truncated": False}
    return result


@method(
    "sessions.messages.unsubscribe",
    params=MessagesSubscribeParams,
    result=MessagesSubscribeResult,
    scope=READ,
)
def sessions_messages_unsubscribe(
    ctx: CallContext, params: MessagesSubscribeParams
) -> dict[str, Any]:
    """Stop sending this connection the session's `session.message` events."""
    check_agent_id(params.agentId)
    key = resolve_key(params.key)
    agents_of(ctx).follow_messages(ctx.caller.conn_id, key, follow=False)
    return {"subscribed": False, "key": key}


@method(
    "sessions.observer.visibility",
    params=ObserverVisibilityParams,
    result=OkOnly,
    scope=READ,
)
def sessions_observer_visibility(
    ctx: CallContext, params: ObserverVisibilityParams
) -> dict[str, Any]:
    """Acknowledge whether the client is visible; clawgate sends every event either way."""
    return {"ok": True}
