"""Agent runs: `agent` (answered twice), `agent.wait`, `agent.identity.get` (spec §10.2)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from ...agents.run import Run, RunStatus
from ...agents.sessions import MAIN_SESSION_KEY
from ...protocol.detail_codes import ABORTED
from ...protocol.errors import (
    AGENT_RESULT_NOT_FOUND,
    AGENT_TIMEOUT,
    NOT_LINKED,
    InvalidRequest,
    RequestError,
    Unavailable,
)
from ...protocol.limits import RUN_TIMEOUT_MAX_S, WAIT_TIMEOUT_DEFAULT_MS, WAIT_TIMEOUT_MAX_MS
from ...protocol.scopes import READ, WRITE
from ...store.sessions_repo import SessionRecord
from ..context import CallContext
from ..registry import Idempotency, method
from ._common import (
    IdempotencyKey,
    Ignored,
    Params,
    Result,
    SessionKey,
    agents_of,
    avatar_of,
    check_agent_id,
    resolve_key,
)

__all__ = [
    "AgentEventPayload",
    "agent",
    "agent_identity_get",
    "agent_wait",
    "check_message",
    "final_answer",
]


class AgentParams(Params):
    """Params of `agent`."""

    message: str
    agentId: str | None = None
    sessionKey: SessionKey | None = None
    sessionId: str | None = None
    thinking: str | None = None
    deliver: bool | None = None
    channel: str | None = None
    to: str | None = None
    replyTo: str | None = None
    accountId: str | None = None
    threadId: str | None = None
    attachments: list[Any] | None = None
    timeout: Annotated[int, Field(ge=1, le=RUN_TIMEOUT_MAX_S)] | None = None
    bestEffortDeliver: bool | None = None
    lane: str | None = None
    extraSystemPrompt: str | None = None
    label: str | None = None
    idempotencyKey: IdempotencyKey
    provider: Ignored = None
    model: Ignored = None
    expectedExistingSessionId: Ignored = None
    replyChannel: Ignored = None
    replyAccountId: Ignored = None
    groupId: Ignored = None
    groupChannel: Ignored = None
    groupSpace: Ignored = None
    cwd: Ignored = None
    cleanupBundleMcpOnRunEnd: Ignored = None
    modelRun: Ignored = None
    promptMode: Ignored = None
    bootstrapContextMode: Ignored = None
    bootstrapContextRunKind: Ignored = None
    acpTurnSource: Ignored = None
    internalRuntimeHandoffId: Ignored = None
    internalExecutionIdentityRetry: Ignored = None
    internalExecutionIdentityRecoveryAttempt: Ignored = None
    execApprovalFollowupExpectedSessionId: Ignored = None
    internalEvents: Ignored = None
    inputProvenance: Ignored = None
    suppressPromptPersistence: Ignored = None
    sessionEffects: Ignored = None
    sourceReplyDeliveryMode: Ignored = None
    disableMessageTool: Ignored = None
    swarmCollector: Ignored = None
    swarmOutputSchema: Ignored = None
    forceRestartSafeTools: Ignored = None
    forceCodeModeTools: Ignored = None
    voiceWakeTrigger: Ignored = None


class RunPayloadText(Result):
    """One reply payload."""

    text: str
    mediaUrl: str | None = None


class RunMeta(Result):
    """How a run went."""

    durationMs: int
    stopReason: str | None = None
    usage: dict[str, Any] | None = None


class RunResult(Result):
    """The result of a finished run."""

    payloads: list[RunPayloadText]
    meta: RunMeta


class AgentAccepted(Result):
    """First `agent` response."""

    runId: str
    status: Literal["accepted"]
    acceptedAt: int


class AgentFinal(Result):
    """Final `agent` response (also the payload beside a failed run's error)."""

    runId: str
    status: Literal["ok", "error"]
    summary: str
    result: RunResult | None = None


class AgentWaitParams(Params):
    """Params of `agent.wait`."""

    runId: Annotated[str, Field(min_length=1, max_length=256)]
    timeoutMs: Annotated[int, Field(ge=0, le=WAIT_TIMEOUT_MAX_MS)] | None = None


class AgentWaitResult(Result):
    """Result of `agent.wait`."""

    runId: str
    status: Literal["ok", "error", "timeout"]
    startedAt: int | None = None
    endedAt: int | None = None
    error: str | None = None


class IdentityParams(Params):
    """Params of `agent.identity.get`."""

    agentId: str | None = None
    sessionKey: SessionKey | None = None


class IdentityResult(Result):
    """Result of `agent.identity.get`: who answers in the chat."""

    agentId: str
    name: str
    avatar: str | None = None


class AgentEventPayload(Result):
    """The `agent` event."""

    runId: str
    seq: int
    stream: str
    ts: int
    data: dict[str, Any]
    sessionKey: str | None = None


def check_message(message: str, attachments: list[Any] | None, max_chars: int) -> None:
    """Refuse what a run cannot take.

    Raises:
        InvalidRequest: attachments, a message with no text, or one over `max_chars`.
    """
    if attachments:
        raise InvalidRequest("attachments are not supported yet; send text only")
    if len(message) > max_chars:
        raise InvalidRequest(
            f"message is {len(message)} characters, over the limit of {max_chars} "
            "(agent.max_input_chars); send less"
        )
    if not message.strip():
        raise InvalidRequest("message is empty; send some text")


def final_answer(run: Run) -> dict[str, Any]:
    """Return a finished run's final `agent` payload.

    Raises:
        RequestError: the run failed, timed out or was aborted; the payload rides along.
    """
    payload = run.final_payload()
    if run.status is RunStatus.OK:
        return payload
    if run.status is RunStatus.TIMEOUT:
        raise RequestError(run.error or "agent run timed out", code=AGENT_TIMEOUT, payload=payload)
    if run.status is RunStatus.ABORTED:
        raise Unavailable("agent run aborted", details={"code": ABORTED}, payload=payload)
    raise Unavailable(f"agent run failed: {run.error}", payload=payload)


async def _session_for(ctx: CallContext, params: AgentParams) -> SessionRecord:
    service = agents_of(ctx)
    if params.sessionKey is not None:
        return await service.sessions.ensure(resolve_key(params.sessionKey))
    if params.sessionId is not None:
        record = service.sessions.by_session_id(params.sessionId)
        if record is None:
            raise InvalidRequest(
                f"unknown sessionId {params.sessionId}; call sessions.list for current ids"
            )
        return record
    return await service.sessions.ensure(MAIN_SESSION_KEY)


@method(
    "agent",
    params=AgentParams,
    result=AgentAccepted | AgentFinal,
    scope=WRITE,
    idempotency=Idempotency.REQUIRED,
    handler_dedupes=True,
)
async def agent(ctx: CallContext, params: AgentParams) -> dict[str, Any]:
    """Accept a run (first response), then answer again with its outcome."""
    service = agents_of(ctx)
    check_agent_id(params.agentId)

    async def session() -> SessionRecord:
        check_message(params.message, params.attachments, service.settings.max_input_chars)
        if params.deliver:
            raise RequestError(
                "no channel is linked; send without deliver or link a channel first",
                code=NOT_LINKED,
            )
        return await _session_for(ctx, params)

    timeout_s = params.timeout or service.settings.timeout_s
    run, _ = await service.run_once(params.idempotencyKey, session, params.message, timeout_s)
    if run.finished:
        return final_answer(run)  # a duplicate of an ended run gets the final only
    ctx.caller.respond(ctx.request_id, run.accepted_payload())
    await run.done.wait()
    return final_answer(run)


@method("agent.wait", params=AgentWaitParams, result=AgentWaitResult, scope=WRITE)
async def agent_wait(ctx: CallContext, params: AgentWaitParams) -> dict[str, Any]:
    """Wait for a run to end, up to `timeoutMs` (default 30 s); never affects the run."""
    service = agents_of(ctx)
    run = service.runs.get(params.runId)
    if run is None:
        raise RequestError(
            f"no agent run {params.runId}: it never ran here or ended over 5 minutes ago",
            code=AGENT_RESULT_NOT_FOUND,
        )
    timeout_ms = WAIT_TIMEOUT_DEFAULT_MS if params.timeoutMs is None else params.timeoutMs
    await service.runs.wait(run, timeout_ms / 1000)
    result: dict[str, Any] = {"runId": run.run_id}
    if run.status is RunStatus.OK:
        result["status"] = "ok"
    elif run.status is RunStatus.ERROR:
        result["status"] = "error"
    else:
        result["status"] = "timeout"  # still running, timed out, or aborted (as OpenClaw)
    if run.started_at is not None:
        result["startedAt"] = run.started_at
    if run.ended_at is not None:
        result["endedAt"] = run.ended_at
    if run.error is not None and run.finished:
        result["error"] = run.error
    return result


@method("agent.identity.get", params=IdentityParams, result=IdentityResult, scope=READ)
def agent_identity_get(ctx: CallContext, params: IdentityParams) -> dict[str, Any]:
    """Return the name (and avatar) the chat shows for the agent."""
    check_agent_id(params.agentId)
    if params.sessionKey is not None:
        resolve_key(params.sessionKey)
    settings = ctx.services.info.agent
    return {
        "agentId": "main",
        "name": settings.name,
        "avatar": avatar_of(settings.name, settings.avatar),
    }
