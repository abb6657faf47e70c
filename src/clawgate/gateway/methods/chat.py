"""Chat: `chat.send`, `chat.history`, `chat.abort`, `chat.inject` (spec §10.3).

`chat.history` pages with `before`, a clawgate extension: the result's `cursor` (present
while older messages exist) passed as `before` returns the page preceding this one.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import Field

from ...agents.run import RunStatus
from ...agents.sessions import row, wire_message
from ...channels.webchat import WEBCHAT
from ...protocol.errors import InvalidRequest
from ...protocol.limits import (
    HISTORY_DEFAULT_LIMIT,
    HISTORY_MAX_BYTES,
    LIST_LIMIT_MAX,
    RUN_TIMEOUT_MAX_S,
)
from ...protocol.scopes import ADMIN, READ, WRITE
from ..context import CallContext
from ..registry import Idempotency, method
from ._common import (
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
    "ChatEventPayload",
    "chat_abort",
    "chat_history",
    "chat_inject",
    "chat_send",
    "chat_startup",
]


class ChatSendParams(Params):
    """Params of `chat.send`; OpenClaw 2026.9.6's other fields are accepted and ignored."""

    sessionKey: SessionKey
    message: str
    thinking: str | None = None
    deliver: bool | None = None
    attachments: list[Any] | None = None
    timeoutMs: Annotated[int, Field(ge=1_000, le=RUN_TIMEOUT_MAX_S * 1000)] | None = None
    idempotencyKey: IdempotencyKey
    agentId: str | None = None
    # The session the client believes it is in; a reset since is not an error here.
    sessionId: Ignored = None
    expectedLeafEntryId: Ignored = None
    expectedPermissionMode: Ignored = None
    expectedSessionRoutingContract: Ignored = None
    expectedToolOverrides: Ignored = None
    fastAutoOnSeconds: Ignored = None
    fastMode: Ignored = None
    intent: Ignored = None
    mentions: Ignored = None
    originatingAccountId: Ignored = None
    originatingChannel: Ignored = None
    originatingThreadId: Ignored = None
    originatingTo: Ignored = None
    queueMode: Ignored = None
    replyToId: Ignored = None
    suppressCommandInterpretation: Ignored = None
    systemInputProvenance: Ignored = None
    systemProvenanceReceipt: Ignored = None
    toolBindings: Ignored = None
    workContext: Ignored = None


class ChatSendResult(Result):
    """Result of `chat.send`."""

    runId: str
    status: Literal["started", "in_flight", "ok", "error", "aborted"]


class ChatHistoryParams(Params):
    """Params of `chat.history`; `before` is clawgate's paging cursor, `cursor` OpenClaw's delta."""

    sessionKey: SessionKey
    limit: Annotated[int, Field(ge=1, le=LIST_LIMIT_MAX)] | None = None
    maxChars: Annotated[int, Field(ge=1)] | None = None
    before: Annotated[int, Field(ge=1)] | None = None
    agentId: str | None = None
    # `deltaCursor` of an earlier answer: only the messages stored since are returned.
    cursor: str | None = None
    maxBytes: Annotated[int, Field(ge=1024)] | None = None
    offset: Ignored = None
    pendingBefore: Ignored = None
    inputRunIds: Ignored = None
    messageId: Ignored = None
    sessionId: Ignored = None


class ChatStartupParams(Params):
    """Params of `chat.startup`: a session key, or OpenClaw's `shortId` lookup."""

    sessionKey: SessionKey | None = None
    agentId: str | None = None
    limit: Annotated[int, Field(ge=1, le=LIST_LIMIT_MAX)] | None = None
    maxChars: Annotated[int, Field(ge=1)] | None = None
    maxBytes: Annotated[int, Field(ge=1024)] | None = None
    cursor: str | None = None
    shortId: str | None = None
    slugHint: Ignored = None
    offset: Ignored = None
    pendingBefore: Ignored = None
    inputRunIds: Ignored = None
    messageId: Ignored = None
    sessionId: Ignored = None


class TextPart(Result):
    """A text content part."""

    type: Literal["text"]
    text: str


class ChatMessage(Result):
    """A transcript message."""

    role: Literal["user", "assistant", "system"]
    content: list[TextPart]
    timestamp: int
    label: str | None = None
    # OpenClaw's transcript metadata: `{id, seq, idempotencyKey?}`.
    openclaw_meta: dict[str, Any] | None = Field(default=None, alias="__openclaw")


class ChatHistoryResult(Result):
    """Result of `chat.history`; `hasMore` and `cursor` are clawgate's paging extension."""

    sessionKey: str
    sessionId: str
    messages: list[ChatMessage]
    thinkingLevel: str
    verboseLevel: str | None = None
    hasMore: bool
    cursor: int | None = None
    # Pass it back as `cursor` to get only what was stored since (OpenClaw's delta form).
    deltaCursor: str | None = None
    defaults: dict[str, Any] | None = None
    sessionInfo: dict[str, Any] | None = None


class ChatHistoryDelta(Result):
    """`chat.history` with `cursor`: the messages stored since, or `reset` when it is stale."""

    kind: Literal["delta", "reset"]
    messages: list[ChatMessage] | None = None
    deltaCursor: str | None = None
    sessionInfo: dict[str, Any] | None = None


class StartupResolution(Result):
    """How `chat.startup` resolved a `shortId` (clawgate has none: never found)."""

    ok: bool


class ChatStartupResult(ChatHistoryResult):
    """Result of `chat.startup`: the history, or an unresolved `shortId`."""

    sessionKey: str | None = None  # type: ignore[assignment]
    sessionId: str | None = None  # type: ignore[assignment]
    messages: list[ChatMessage] | None = None  # type: ignore[assignment]
    thinkingLevel: str | None = None  # type: ignore[assignment]
    hasMore: bool | None = None  # type: ignore[assignment]
    resolution: StartupResolution | None = None


class ChatAbortParams(Params):
    """Params of `chat.abort`."""

    sessionKey: SessionKey
    runId: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    agentId: str | None = None
    preserveSideRuns: Ignored = None


class ChatAbortResult(Result):
    """Result of `chat.abort`."""

    ok: bool
    aborted: bool
    runIds: list[str]


class ChatInjectParams(Params):
    """Params of `chat.inject`."""

    sessionKey: SessionKey
    message: str
    label: Annotated[str, Field(max_length=256)] | None = None
    idempotencyKey: IdempotencyKey | None = None
    agentId: str | None = None


class ChatInjectResult(Result):
    """Result of `chat.inject`."""

    ok: bool
    messageId: str


class ChatEventPayload(Result):
    """The `chat` event."""

    runId: str
    sessionKey: str
    seq: int
    state: Literal["delta", "final", "error", "aborted"]
    message: ChatMessage | None = None
    deltaText: str | None = None
    replace: bool | None = None
    errorMessage: str | None = None
    errorKind: Literal["refusal", "timeout", "rate_limit", "context_length", "unknown"] | None = (
        None
    )
    usage: dict[str, Any] | None = None
    stopReason: str | None = None


_ENDED_STATUS: Final = {
    RunStatus.OK: "ok",
    RunStatus.ERROR: "error",
    RunStatus.TIMEOUT: "error",
    RunStatus.ABORTED: "aborted",
}


@method(
    "chat.send",
    params=ChatSendParams,
    result=ChatSendResult,
    scope=WRITE,
    idempotency=Idempotency.REQUIRED,
    handler_dedupes=True,
)
async def chat_send(ctx: CallContext, params: ChatSendParams) -> dict[str, Any]:
    """Store the message and start a run answering it; an unknown session is created."""
    service = agents_of(ctx)
    check_agent_id(params.agentId)
    key = resolve_key(params.sessionKey)

    async def session() -> Any:
        check_message(params.message, params.attachments, service.settings.max_input_chars)
        return await service.sessions.ensure(key)

    timeout_s = (
        params.timeoutMs / 1000 if params.timeoutMs is not None else service.settings.timeout_s
    )
    run, created = await service.run_once(params.idempotencyKey, session, params.message, timeout_s)
    if created:
        status = "started"
        if ctx.services.channels is not None:  # WebChat's inbound, in its channel's status
            ctx.services.channels.runtime.received(WEBCHAT, ctx.services.clock())
    elif not run.finished:
        status = "in_flight"
    else:
        status = _ENDED_STATUS[run.status]
    return {"runId": run.run_id, "status": status}


def _delta_cursor(session_id: str, seq: int) -> str:
    return f"{session_id}:{seq}"


def _parse_cursor(cursor: str) -> tuple[str, int] | None:
    session_id, _, seq = cursor.rpartition(":")
    return (session_id, int(seq)) if session_id and seq.isdigit() else None


def _within(messages: list[dict[str, Any]], max_bytes: int) -> int:
    """Return how many of the oldest messages to drop so the rest fit in `max_bytes`."""
    size = sum(len(orjson.dumps(message)) + 1 for message in messages)
    dropped = 0
    while size > max_bytes and dropped < len(messages):
        size -= len(orjson.dumps(messages[dropped])) + 1
        dropped += 1
    return dropped


async def history(
    ctx: CallContext, params: ChatHistoryParams | ChatStartupParams
) -> dict[str, Any]:
    """Answer `chat.history` (and `chat.startup`): a page of the transcript, or a delta."""
    service = agents_of(ctx)
    check_agent_id(params.agentId)
    key = resolve_key(params.sessionKey or "")
    record = service.sessions.get(key)
    max_bytes = min(params.maxBytes or HISTORY_MAX_BYTES, HISTORY_MAX_BYTES)
    limit = params.limit or HISTORY_DEFAULT_LIMIT
    if params.cursor is not None:
        parsed = _parse_cursor(params.cursor)
        if record is None or parsed is None or parsed[0] != record.session_id:
            return {"kind": "reset"}
        stored, _ = await service.sessions.messages_after(record, after=parsed[1], limit=limit)
        messages = [wire_message(m, params.maxChars) for m in stored]
        last = stored[-1].seq if stored else parsed[1]
        return {
            "kind": "delta",
            "messages": messages,
            "deltaCursor": _delta_cursor(record.session_id, last),
            "sessionInfo": row(record),
        }
    result: dict[str, Any] = {"sessionKey": key, "thinkingLevel": "off"}
    defaults = session_defaults(ctx)
    if record is None:
        # A session that does not exist yet has an empty transcript (and no id).
        return result | {"sessionId": "", "messages": [], "hasMore": False, "defaults": defaults}
    before = params.before if isinstance(params, ChatHistoryParams) else None
    stored, more = await service.sessions.messages(record, limit=limit, before=before)
    messages = [wire_message(message, params.maxChars) for message in stored]
    dropped = _within(messages, max_bytes)
    if dropped:
        messages, stored, more = messages[dropped:], stored[dropped:], True
    result |= {"sessionId": record.session_id, "messages": messages, "hasMore": more}
    if more and stored:
        result["cursor"] = stored[0].seq
    elif more:
        result["cursor"] = before or 1
    if before is None:
        # The newest page: later deltas start after its last message.
        last = stored[-1].seq if stored else 0
        result["deltaCursor"] = _delta_cursor(record.session_id, last)
    result["defaults"] = defaults
    result["sessionInfo"] = row(record)
    return result


@method(
    "chat.history",
    params=ChatHistoryParams,
    result=ChatHistoryResult | ChatHistoryDelta,
    scope=READ,
)
async def chat_history(ctx: CallContext, params: ChatHistoryParams) -> dict[str, Any]:
    """Return the newest `limit` messages (before `before`), oldest first, within 6 MB.

    With `cursor` (an earlier `deltaCursor`) only the messages stored since are returned,
    or `{kind:"reset"}` when the session was reset meanwhile.
    """
    return await history(ctx, params)


@method("chat.startup", params=ChatStartupParams, result=ChatStartupResult, scope=READ)
async def chat_startup(ctx: CallContext, params: ChatStartupParams) -> dict[str, Any]:
    """Open a chat view: `chat.history` of the session, with its defaults and row.

    OpenClaw's `shortId` form names a session by a short id clawgate does not issue, so it
    resolves to nothing (`resolution.ok:false`), as OpenClaw answers an unknown one.
    """
    if params.sessionKey is None:
        if params.shortId is None:
            raise InvalidRequest("chat.startup needs sessionKey (or shortId with agentId)")
        return {"resolution": {"ok": False}}
    return await history(ctx, params)


@method("chat.abort", params=ChatAbortParams, result=ChatAbortResult, scope=WRITE)
def chat_abort(ctx: CallContext, params: ChatAbortParams) -> dict[str, Any]:
    """Abort one run of the session, or all of its active runs, and their backend streams."""
    service = agents_of(ctx)
    check_agent_id(params.agentId)
    key = resolve_key(params.sessionKey)
    if params.runId is None:
        run_ids = service.runs.abort_session(key)
    else:
        run = service.runs.get(params.runId)
        aborted = run is not None and run.session_key == key and service.runs.abort(run.run_id)
        run_ids = [params.runId] if aborted else []
    return {"ok": True, "aborted": bool(run_ids), "runIds": run_ids}


@method(
    "chat.inject",
    params=ChatInjectParams,
    result=ChatInjectResult,
    scope=ADMIN,
    idempotency=Idempotency.OPTIONAL,
)
async def chat_inject(ctx: CallContext, params: ChatInjectParams) -> dict[str, Any]:
    """Append an assistant note to the transcript without running the agent."""
    service = agents_of(ctx)
    check_agent_id(params.agentId)
    key = resolve_key(params.sessionKey)
    record = service.sessions.get(key)
    if record is None:
        raise InvalidRequest(f"unknown session {key}; create it with sessions.create first")
    message = await service.sessions.append(record, "assistant", params.message, label=params.label)
    return {"ok": True, "messageId": message.message_id}
