"""Chat: `chat.send`, `chat.history`, `chat.abort`, `chat.inject` (spec §10.3).

`chat.history` pages with `before`, a clawgate extension: the result's `cursor` (present
while older messages exist) passed as `before` returns the page preceding this one.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import Field

from ...agents.run import RunStatus
from ...protocol.errors import InvalidRequest
from ...protocol.limits import (
    HISTORY_DEFAULT_LIMIT,
    HISTORY_MAX_BYTES,
    LIST_LIMIT_MAX,
    RUN_TIMEOUT_MAX_S,
)
from ...protocol.scopes import ADMIN, READ, WRITE
from ...store.sessions_repo import StoredMessage
from ..context import CallContext
from ..registry import Idempotency, method
from ._common import (
    IdempotencyKey,
    Params,
    Result,
    SessionKey,
    agents_of,
    resolve_key,
    text_content,
)
from .agent import check_message

__all__ = ["ChatEventPayload", "chat_abort", "chat_history", "chat_inject", "chat_send"]


class ChatSendParams(Params):
    """Params of `chat.send`."""

    sessionKey: SessionKey
    message: str
    thinking: str | None = None
    deliver: bool | None = None
    attachments: list[Any] | None = None
    timeoutMs: Annotated[int, Field(ge=1_000, le=RUN_TIMEOUT_MAX_S * 1000)] | None = None
    idempotencyKey: IdempotencyKey


class ChatSendResult(Result):
    """Result of `chat.send`."""

    runId: str
    status: Literal["started", "in_flight", "ok", "error", "aborted"]


class ChatHistoryParams(Params):
    """Params of `chat.history`; `before` is clawgate's paging cursor."""

    sessionKey: SessionKey
    limit: Annotated[int, Field(ge=1, le=LIST_LIMIT_MAX)] | None = None
    maxChars: Annotated[int, Field(ge=1)] | None = None
    before: Annotated[int, Field(ge=1)] | None = None


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


class ChatHistoryResult(Result):
    """Result of `chat.history`; `hasMore` and `cursor` are clawgate's paging extension."""

    sessionKey: str
    sessionId: str
    messages: list[ChatMessage]
    thinkingLevel: str
    verboseLevel: str | None = None
    hasMore: bool
    cursor: int | None = None


class ChatAbortParams(Params):
    """Params of `chat.abort`."""

    sessionKey: SessionKey
    runId: Annotated[str, Field(min_length=1, max_length=256)] | None = None


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
    elif not run.finished:
        status = "in_flight"
    else:
        status = _ENDED_STATUS[run.status]
    return {"runId": run.run_id, "status": status}


def _wire_message(message: StoredMessage, max_chars: int | None) -> dict[str, Any]:
    text = message.text if max_chars is None else message.text[:max_chars]
    wire: dict[str, Any] = {
        "role": message.role,
        "content": text_content(text),
        "timestamp": message.ts,
    }
    if message.label is not None:
        wire["label"] = message.label
    return wire


@method("chat.history", params=ChatHistoryParams, result=ChatHistoryResult, scope=READ)
async def chat_history(ctx: CallContext, params: ChatHistoryParams) -> dict[str, Any]:
    """Return the newest `limit` messages (before `before`), oldest first, within 6 MB."""
    service = agents_of(ctx)
    key = resolve_key(params.sessionKey)
    result: dict[str, Any] = {"sessionKey": key, "thinkingLevel": "off"}
    record = service.sessions.get(key)
    if record is None:
        # A session that does not exist yet has an empty transcript (and no id).
        return result | {"sessionId": "", "messages": [], "hasMore": False}
    limit = params.limit or HISTORY_DEFAULT_LIMIT
    stored, more = await service.sessions.messages(record, limit=limit, before=params.before)
    messages = [_wire_message(message, params.maxChars) for message in stored]
    size = sum(len(orjson.dumps(message)) + 1 for message in messages)
    dropped = 0
    while size > HISTORY_MAX_BYTES and dropped < len(messages):
        size -= len(orjson.dumps(messages[dropped])) + 1
        dropped += 1
    if dropped:
        messages, stored, more = messages[dropped:], stored[dropped:], True
    result |= {"sessionId": record.session_id, "messages": messages, "hasMore": more}
    if more and stored:
        result["cursor"] = stored[0].seq
    elif more:
        result["cursor"] = params.before or 1
    return result


@method("chat.abort", params=ChatAbortParams, result=ChatAbortResult, scope=WRITE)
def chat_abort(ctx: CallContext, params: ChatAbortParams) -> dict[str, Any]:
    """Abort one run of the session, or all of its active runs, and their backend streams."""
    service = agents_of(ctx)
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
    key = resolve_key(params.sessionKey)
    record = service.sessions.get(key)
    if record is None:
        raise InvalidRequest(f"unknown session {key}; create it with sessions.create first")
    message = await service.sessions.append(record, "assistant", params.message, label=params.label)
    return {"ok": True, "messageId": message.message_id}
