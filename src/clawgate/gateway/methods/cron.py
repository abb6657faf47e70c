"""Cron: `cron.list|status|add|update|remove|run|runs` and the `cron` event (spec §10.8).

`jobId` is accepted wherever `id` is. clawgate adds `cron.status` (OpenClaw's `cron status`
calls it) and three per-job policies with defaults: `catchUp` ("once"), `overlap` ("skip")
and `backoff` ("exponential"); see `automation/jobs.py`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from ...agents.sessions import DEFAULT_AGENT_ID
from ...automation.delivery import WEBCHAT
from ...automation.errors import JobError, UnknownJob
from ...automation.listing import JobFilter, Page, job_agent, page_of, snapshot_revision
from ...protocol.detail_codes import UNKNOWN_CRON_JOB
from ...protocol.errors import InvalidRequest, Unavailable
from ...protocol.limits import (
    CRON_EVERY_MAX_MS,
    CRON_EVERY_MIN_MS,
    CRON_RUNS_DEFAULT_LIMIT,
    CRON_RUNS_MAX_LIMIT,
    RUN_TIMEOUT_MAX_S,
)
from ...protocol.scopes import ADMIN, READ
from ..context import CallContext
from ..cron_host import CronHost
from ..registry import Idempotency, method
from ._common import EmptyParams, IdempotencyKey, Ignored, Params, Result, check_agent_id

__all__ = [
    "CronEventPayload",
    "cron_add",
    "cron_list",
    "cron_remove",
    "cron_run",
    "cron_runs",
    "cron_status",
    "cron_update",
]

Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
JobId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class AtScheduleShape(Params):
    """Run once at `atMs`."""

    kind: Literal["at"]
    atMs: Annotated[int, Field(ge=0)]


class EveryScheduleShape(Params):
    """Run every `everyMs`, counted from `anchorMs` (default: when the job was added)."""

    kind: Literal["every"]
    everyMs: Annotated[int, Field(ge=CRON_EVERY_MIN_MS, le=CRON_EVERY_MAX_MS)]
    anchorMs: Annotated[int, Field(ge=0)] | None = None


class CronScheduleShape(Params):
    """Run when the wall clock of `tz` (default: the gateway's zone) matches `expr`."""

    kind: Literal["cron"]
    expr: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    tz: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


ScheduleShape = Annotated[
    AtScheduleShape | EveryScheduleShape | CronScheduleShape, Field(discriminator="kind")
]


class SystemEventShape(Params):
    """Queue `text` as a system event for the main session."""

    kind: Literal["systemEvent"]
    text: Text


class AgentTurnShape(Params):
    """Run an agent turn; `deliver` sends the reply to `channel`/`to`."""

    kind: Literal["agentTurn"]
    message: Text
    thinking: str | None = None
    timeoutSeconds: Annotated[int, Field(ge=1, le=RUN_TIMEOUT_MAX_S)] | None = None
    deliver: bool | None = None
    channel: Name | None = None
    to: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None


PayloadShape = Annotated[SystemEventShape | AgentTurnShape, Field(discriminator="kind")]


class _JobFields(Params):
    """The fields of a job a client sets."""

    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    enabled: bool | None = None
    agentId: str | None = None
    sessionTarget: Literal["main", "isolated"] | None = None
    wakeMode: Literal["now", "next-heartbeat"] | None = None
    deleteAfterRun: bool | None = None
    catchUp: Literal["none", "once"] | None = None
    overlap: Literal["skip", "queue"] | None = None
    backoff: Literal["exponential", "none"] | None = None


class CronAddParams(_JobFields):
    """Params of `cron.add`: a CronJob without id, times and state."""

    schedule: ScheduleShape
    payload: PayloadShape
    idempotencyKey: IdempotencyKey | None = None


class AgentTurnPatch(Params):
    """Fields of an agentTurn payload to change."""

    kind: Literal["agentTurn"]
    message: Text | None = None
    thinking: str | None = None
    timeoutSeconds: Annotated[int, Field(ge=1, le=RUN_TIMEOUT_MAX_S)] | None = None
    deliver: bool | None = None
    channel: Name | None = None
    to: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None


class SystemEventPatch(Params):
    """Fields of a systemEvent payload to change."""

    kind: Literal["systemEvent"]
    text: Text | None = None


class CronPatch(_JobFields):
    """Any CronJob field but id, createdAtMs and state; a payload patch names its kind."""

    schedule: ScheduleShape | None = None
    payload: Annotated[SystemEventPatch | AgentTurnPatch, Field(discriminator="kind")] | None = None
    updatedAtMs: int | None = None  # accepted and ignored: the gateway sets it


class _OneJob(Params):
    """A job named by `id` or its alias `jobId`."""

    id: JobId | None = None
    jobId: JobId | None = None

    @model_validator(mode="after")
    def _one_id(self) -> _OneJob:
        if (self.id is None) == (self.jobId is None):
            raise ValueError("give the job's id (or jobId), once")
        return self

    @property
    def job(self) -> str:
        """The job id, whichever name it came under."""
        return self.id or self.jobId or ""


class CronUpdateParams(_OneJob):
    """Params of `cron.update`."""

    patch: CronPatch


class CronRemoveParams(_OneJob):
    """Params of `cron.remove`."""


class CronRunParams(_OneJob):
    """Params of `cron.run`."""

    mode: Literal["due", "force"] | None = None
    idempotencyKey: IdempotencyKey | None = None


RunStatusValue = Literal["ok", "error", "skipped"]
AgentId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Offset = Annotated[int, Field(ge=0)]


class CronRunsParams(Params):
    """Params of `cron.runs`: one job's runs (`id`), or every job's (`scope: "all"`).

    OpenClaw 2026.9.6's filters and paging are acted on; `query` and the delivery filters
    are accepted and ignored (runs record no delivery status).
    """

    id: JobId | None = None
    jobId: JobId | None = None
    scope: Literal["job", "all"] | None = None
    agentId: AgentId | None = None
    limit: Annotated[int, Field(ge=1, le=CRON_RUNS_MAX_LIMIT)] | None = None
    offset: Offset | None = None
    status: Literal["all", "ok", "error", "skipped"] | None = None
    statuses: Annotated[list[RunStatusValue], Field(min_length=1, max_length=3)] | None = None
    runId: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    sortDir: Literal["asc", "desc"] | None = None
    query: Ignored = None
    deliveryStatus: Ignored = None
    deliveryStatuses: Ignored = None

    @model_validator(mode="after")
    def _at_most_one_id(self) -> CronRunsParams:
        if self.id is not None and self.jobId is not None:
            raise ValueError("give the job's id (or jobId), once")
        return self

    @property
    def job(self) -> str | None:
        """The job id, whichever name it came under."""
        return self.id or self.jobId

    def wanted_statuses(self) -> list[str] | None:
        """The end states asked for (None: every one)."""
        if self.statuses is not None:
            return list(self.statuses)
        return None if self.status in (None, "all") else [str(self.status)]


class CronListParams(Params):
    """Params of `cron.list`: OpenClaw 2026.9.6's filters and paging are acted on."""

    includeDisabled: bool | None = None
    limit: Annotated[int, Field(ge=1)] | None = None
    offset: Offset | None = None
    query: Annotated[str, StringConstraints(max_length=1000)] | None = None
    enabled: Literal["all", "enabled", "disabled"] | None = None
    scheduleKind: Literal["all", "at", "every", "cron", "on-exit", "stream"] | None = None
    lastRunStatus: Literal["all", "ok", "error", "skipped", "unknown"] | None = None
    trigger: Literal["all", "conditional", "unconditional"] | None = None
    agentId: AgentId | None = None
    # Accepted, not acted on: jobs are listed next to run first; there are no per-session
    # listings, compact forms or delivery previews here.
    sessionKey: Ignored = None
    sessionAgentId: Ignored = None
    sortBy: Ignored = None
    sortDir: Ignored = None
    compact: Ignored = None
    includeDeliveryPreviews: Ignored = None

    def job_filter(self) -> JobFilter:
        """Return the filter these params ask for."""
        return JobFilter(
            enabled=self.enabled or ("all" if self.includeDisabled else "enabled"),
            agent_id=self.agentId,
            default_agent=DEFAULT_AGENT_ID,
            query=self.query or "",
            schedule_kind=self.scheduleKind or "all",
            last_run_status=self.lastRunStatus or "all",
            trigger=self.trigger or "all",
        )


class CronJobState(Result):
    """Where a job stands."""

    nextRunAtMs: int | None = None
    runningAtMs: int | None = None
    lastRunAtMs: int | None = None
    lastStatus: Literal["ok", "error", "skipped", "interrupted"] | None = None
    lastError: str | None = None
    lastDurationMs: int | None = None
    lastRunLate: bool | None = None
    consecutiveErrors: int | None = None


class CronJobShape(Result):
    """CronJob (spec §10.8), with clawgate's policies."""

    id: str
    name: str | None = None
    description: str | None = None
    enabled: bool
    agentId: str | None = None
    schedule: AtScheduleShape | EveryScheduleShape | CronScheduleShape
    sessionTarget: Literal["main", "isolated"]
    wakeMode: Literal["now", "next-heartbeat"]
    payload: SystemEventShape | AgentTurnShape
    deleteAfterRun: bool
    catchUp: Literal["none", "once"]
    overlap: Literal["skip", "queue"]
    backoff: Literal["exponential", "none"]
    createdAtMs: int
    updatedAtMs: int
    state: CronJobState


class PageShape(Result):
    """Where a page sits in its listing (OpenClaw's paging members)."""

    total: int
    offset: int
    limit: int
    hasMore: bool
    nextOffset: int | None


class CronListResult(PageShape):
    """Result of `cron.list`: one page of the jobs, and a revision of the whole list."""

    jobs: list[CronJobShape]
    snapshotRevision: str


class CronStatusResult(Result):
    """Result of `cron.status`."""

    enabled: bool
    jobs: int
    nextWakeAtMs: int | None
    timezone: str


class CronRemoveResult(Result):
    """Result of `cron.remove`."""

    ok: bool
    removed: bool


class CronRunResult(Result):
    """Result of `cron.run`: the run was queued (or recorded as skipped, with a reason)."""

    ok: bool
    runId: str | None = None
    ran: bool
    reason: str | None = None


class CronRunEntry(Result):
    """One ended run."""

    ts: int
    jobId: str
    runId: str
    status: Literal["ok", "error", "skipped", "interrupted"]
    error: str | None = None
    summary: str | None = None
    runAtMs: int
    durationMs: int
    nextRunAtMs: int | None = None
    scheduledAtMs: int | None = None
    late: bool | None = None
    trigger: Literal["schedule", "manual"]
    sessionKey: str | None = None
    jobName: str | None = None


class CronRunsResult(PageShape):
    """Result of `cron.runs`: one page of ended runs."""

    entries: list[CronRunEntry]


class CronEventPayload(Result):
    """CronEvent (spec §10.8), plus the run's id."""

    jobId: str
    action: Literal["added", "updated", "removed", "started", "finished"]
    runAtMs: int | None = None
    durationMs: int | None = None
    status: Literal["ok", "error", "skipped", "interrupted"] | None = None
    error: str | None = None
    summary: str | None = None
    sessionKey: str | None = None
    nextRunAtMs: int | None = None
    runId: str | None = None


def _cron(ctx: CallContext) -> CronHost:
    host = ctx.services.cron
    if host is None:
        raise Unavailable("cron needs the state store; start the gateway with a home directory")
    return host


def _unknown(exc: UnknownJob) -> InvalidRequest:
    return InvalidRequest(str(exc), details={"code": UNKNOWN_CRON_JOB, "jobId": exc.job_id})


def _check_delivery(ctx: CallContext, payload: dict[str, Any] | None) -> None:
    if not payload or payload.get("kind") != "agentTurn" or not payload.get("deliver"):
        return
    channel = payload.get("channel") or WEBCHAT
    delivery = ctx.services.delivery
    if not delivery.knows(channel):
        known = ", ".join(delivery.channels()) or "none"
        raise InvalidRequest(
            f"cannot deliver to channel {channel!r}: it is not linked; channels: {known} "
            "(webchat takes a session key in `to`)"
        )
    if channel != WEBCHAT and not payload.get("to"):
        raise InvalidRequest(
            f"deliver to channel {channel!r} needs `to`: the peer to send to (a chat id)"
        )


@method("cron.list", params=CronListParams, result=CronListResult, scope=READ)
def cron_list(ctx: CallContext, params: CronListParams) -> dict[str, Any]:
    """Return the jobs, next to run first (disabled ones only with includeDisabled)."""
    service = _cron(ctx).service
    # Not built: state.db holds no job.
    jobs = service.jobs(include_disabled=True) if service is not None else []
    wanted = params.job_filter()
    chosen = [job for job in jobs if wanted.matches(job)]
    offset, limit = page_of(len(chosen), params.offset or 0, params.limit)
    shown = chosen[offset : offset + limit]
    return {
        "jobs": shown,
        "snapshotRevision": snapshot_revision(chosen),
        **Page(len(chosen), offset, limit, len(shown)).wire(),
    }


@method("cron.status", params=EmptyParams, result=CronStatusResult, scope=READ)
def cron_status(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """Return whether the scheduler runs, how many jobs it has and when it wakes next."""
    return _cron(ctx).status()


@method(
    "cron.add",
    params=CronAddParams,
    result=CronJobShape,
    scope=ADMIN,
    idempotency=Idempotency.OPTIONAL,
)
async def cron_add(ctx: CallContext, params: CronAddParams) -> dict[str, Any]:
    """Save a new job; committed before the answer, which carries its next run."""
    check_agent_id(params.agentId)
    data = params.model_dump(exclude_none=True, exclude={"idempotencyKey"})
    _check_delivery(ctx, data["payload"])
    try:
        return await (await _cron(ctx).get()).add(data)
    except JobError as exc:
        raise InvalidRequest(str(exc)) from None


@method("cron.update", params=CronUpdateParams, result=CronJobShape, scope=ADMIN)
async def cron_update(ctx: CallContext, params: CronUpdateParams) -> dict[str, Any]:
    """Change a job's fields; a new schedule (or re-enabling) counts from now."""
    patch = params.patch.model_dump(exclude_unset=True, exclude={"updatedAtMs"})
    check_agent_id(patch.get("agentId"))
    service = await _cron(ctx).get()
    current = service.get(params.job)
    if current is not None and "payload" in patch:
        merged = {**current.spec.payload.wire(), **patch["payload"]}
        _check_delivery(ctx, merged if merged.get("kind") == patch["payload"]["kind"] else None)
    try:
        return await service.update(params.job, patch)
    except UnknownJob as exc:
        raise _unknown(exc) from None
    except JobError as exc:
        raise InvalidRequest(str(exc)) from None


@method("cron.remove", params=CronRemoveParams, result=CronRemoveResult, scope=ADMIN)
async def cron_remove(ctx: CallContext, params: CronRemoveParams) -> dict[str, Any]:
    """Remove a job; its runs stay readable with cron.runs for 7 days."""
    removed = await (await _cron(ctx).get()).remove(params.job)
    return {"ok": True, "removed": removed}


@method(
    "cron.run",
    params=CronRunParams,
    result=CronRunResult,
    scope=ADMIN,
    idempotency=Idempotency.OPTIONAL,
)
async def cron_run(ctx: CallContext, params: CronRunParams) -> dict[str, Any]:
    """Queue a run now (`force`, the default) or only if the job is due (`due`)."""
    try:
        service = await _cron(ctx).get()
        return await service.run_now(params.job, due_only=params.mode == "due")
    except UnknownJob as exc:
        raise _unknown(exc) from None


@method("cron.runs", params=CronRunsParams, result=CronRunsResult, scope=READ)
async def cron_runs(ctx: CallContext, params: CronRunsParams) -> dict[str, Any]:
    """Return ended runs, newest first: a job's (a removed job's for 7 days), or every job's."""
    host = _cron(ctx)
    job = params.job
    limit = params.limit or CRON_RUNS_DEFAULT_LIMIT
    offset = params.offset or 0
    if (params.scope or ("job" if job else "all")) == "job":
        if job is None:
            raise InvalidRequest("cron.runs with scope job needs the job's id (id or jobId)")
        service = await host.get()
        try:
            await service.check_known(job)
        except UnknownJob as exc:
            raise _unknown(exc) from None
        job_ids: list[str] | None = [job]
    elif host.service is None:
        return {"entries": [], **Page(0, 0, limit, 0).wire()}  # state.db holds no job
    else:
        service = host.service
        job_ids = None
    if params.agentId is not None:
        mine = {
            j["id"]
            for j in service.jobs(include_disabled=True)
            if job_agent(j, DEFAULT_AGENT_ID) == params.agentId
        }
        job_ids = [j for j in job_ids if j in mine] if job_ids is not None else sorted(mine)
    total, entries = await service.runs_page(
        job_ids,
        statuses=params.wanted_statuses(),
        run_id=params.runId,
        newest_first=params.sortDir != "asc",
        offset=offset,
        limit=limit,
    )
    return {"entries": entries, **Page(total, min(offset, total), limit, len(entries)).wire()}
