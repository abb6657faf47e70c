"""The cron scheduler: one timer, the jobs in state.db, and the runs it starts (spec §10.8).

Persist before acting, in this order:
- `add`, `update`, `remove`: the row commits, then the in-memory job and the timer change,
  then `cron` is announced, then the caller is answered.
- A due pass: the runs' start records, and the due instants they consume, commit in one
  transaction; then the runs start and `started` is announced; then the jobs' next
  instants are computed and committed together, and the timer is set for the earliest.
  (Computing next instants is the slow part, so it never delays a start.)
- A run's end: its record and its job's state commit in one transaction, then `finished`.
A run still recorded as running when the gateway starts was cut off by a crash or a kill:
it is marked `interrupted`, and the instant it consumed never runs again.

The scheduler sleeps on one timer until the earliest due instant (at most `max_sleep_s`,
so a wall clock that jumps or a machine that slept is noticed within that time); it never
polls the jobs. All mutations hold one lock, so a pass, an API call and a run's end never
interleave.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import partial
from typing import Any, Final, Protocol

from ..protocol.limits import CRON_RUNS_MAX_LIMIT
from ..store import StateStore
from ..store.cron_repo import (
    JobRow,
    RunRow,
    insert_runs,
    interrupt_running,
    job_known,
    load_jobs,
    page_runs,
    purge_removed,
    remove_job,
    save_job_states,
    trim_runs,
    update_run,
    upsert_job,
)
from .errors import JobError, UnknownJob
from .jobs import CronJob, JobSpec, JobState, RunStatus
from .schedule import AtSchedule
from .scheduler import DueHeap, FireKind, decide_fire, next_after_run

__all__ = [
    "KEEP_REMOVED_MS",
    "RUNS_KEPT",
    "CronService",
    "JobRunner",
    "RunOutcome",
    "RunStart",
    "RunTrigger",
    "UnknownJob",
    "run_entry",
]

logger = logging.getLogger(__name__)

#: A removed job's runs answer `cron.runs` this long (the issue's 7 days).
KEEP_REMOVED_MS: Final = 7 * 86_400_000
#: Runs kept per job, newest first (the largest `cron.runs` limit).
RUNS_KEPT: Final = CRON_RUNS_MAX_LIMIT
#: The longest the timer sleeps before it looks at the wall clock again.
MAX_SLEEP_S: Final = 60.0
#: Jobs read from state.db at a time at start-up (bounds the JSON held at once).
_LOAD_PAGE: Final = 1000
#: The longest a due pass computes next instants before it yields to the event loop.
_ADVANCE_SLICE_S: Final = 0.005
_INTERRUPTED: Final = "the gateway stopped during this run (restart, crash or kill)"


class RunTrigger(StrEnum):
    """Why a run started."""

    SCHEDULE = "schedule"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class RunStart:
    """A run as it starts: the job as it was then, why, and when."""

    run_id: str
    job: CronJob
    trigger: RunTrigger
    started_ms: int
    scheduled_ms: int | None = None
    late: bool = False
    # No other run of the job was in flight when this one started (overlap "queue" lets
    # one wait): only such a run may start the job's session afresh.
    alone: bool = True


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended."""

    status: RunStatus
    error: str | None = None
    summary: str | None = None
    session_key: str | None = None


class JobRunner(Protocol):
    """Carries out a job's payload (the gateway's agent side implements it)."""

    async def run(self, start: RunStart) -> RunOutcome:
        """Run `start.job` once and say how it went; failures are outcomes, not raises."""


def run_entry(row: RunRow) -> dict[str, Any]:
    """Return a `cron.runs` entry (spec §10.8, plus scheduledAtMs, late and trigger)."""
    entry: dict[str, Any] = {
        "ts": row.finished_at if row.finished_at is not None else row.started_at,
        "jobId": row.job_id,
        "runId": row.run_id,
        "status": row.status,
    }
    if row.error is not None:
        entry["error"] = row.error
    if row.summary is not None:
        entry["summary"] = row.summary
    entry["runAtMs"] = row.started_at
    entry["durationMs"] = row.duration_ms or 0
    if row.next_run_at is not None:
        entry["nextRunAtMs"] = row.next_run_at
    if row.scheduled_at is not None:
        entry["scheduledAtMs"] = row.scheduled_at
    if row.late:
        entry["late"] = True
    entry["trigger"] = row.trigger
    if row.session_key is not None:
        entry["sessionKey"] = row.session_key
    return entry


def _new_id() -> str:
    return str(uuid.uuid4())


class CronService:
    """The jobs, the timer, and the runs in flight."""

    def __init__(
        self,
        *,
        store: StateStore,
        clock: Callable[[], int],
        runner: JobRunner,
        announce: Callable[[dict[str, Any]], None],
        default_tz: str,
        enabled: bool = True,
        max_sleep_s: float = MAX_SLEEP_S,
        new_id: Callable[[], str] = _new_id,
    ) -> None:
        """Keep jobs in `store`, run them with `runner`, announce `cron` events."""
        self._store = store
        self._clock = clock
        self._runner = runner
        self._announce = announce
        self.default_tz = default_tz
        self.enabled = enabled
        self._max_sleep_s = max_sleep_s
        self._new_id = new_id
        self._jobs: dict[str, CronJob] = {}
        self._heap = DueHeap()
        self._active: dict[str, int] = {}  # job id -> runs in flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._rearm = asyncio.Event()
        #: How often the timer woke (the benchmark's idle figure; also on /metrics).
        self.wakeups = 0
        self.runs_by_status: dict[str, int] = {}

    # -- life -----------------------------------------------------------------------

    async def load(self) -> None:
        """Read the jobs; mark runs cut off by a crash as interrupted; set the timer."""
        now = self._clock()

        def begin(conn: Any) -> list[RunRow]:
            interrupted = interrupt_running(conn, now, _INTERRUPTED)
            purge_removed(conn, now - KEEP_REMOVED_MS)
            return interrupted

        interrupted = await self._store.write(begin)
        after = ""
        while True:
            page = await self._store.read(partial(load_jobs, after=after, limit=_LOAD_PAGE))
            for row in page:
                self._restore(row)
            if len(page) < _LOAD_PAGE:
                break
            after = page[-1].job_id
        changed: dict[str, JobState] = {}
        for run in interrupted:
            job = self._jobs.get(run.job_id)
            if job is None:
                continue
            job.state.running_since_ms = None
            job.state.last_status = RunStatus.INTERRUPTED
            job.state.last_error = run.error
            job.state.last_duration_ms = run.duration_ms
            changed[job.id] = job.state
            logger.warning("cron job %s: run %s was interrupted", job.label, run.run_id)
        for job in self._jobs.values():
            state = job.state
            consumed = state.last_scheduled_ms
            if (
                state.next_run_ms is not None
                and consumed is not None
                and state.next_run_ms <= consumed
            ):
                # Stopped between a run's start and storing the next instant.
                state.next_run_ms = job.spec.schedule.next_after(consumed)
                changed[job.id] = state
            if job.spec.enabled:
                self._heap.set(job.id, state.next_run_ms)
        if changed:
            await self._store.write(
                lambda conn: save_job_states(conn, [(i, s.stored()) for i, s in changed.items()])
            )

    def _restore(self, row: JobRow) -> None:
        try:
            spec = JobSpec.from_wire(
                row.spec, default_tz=self.default_tz, created_ms=row.created_at, check=False
            )
        except JobError as exc:
            logger.error("cron job %s in state.db cannot be used (%s); skipped", row.job_id, exc)
            return
        state = JobState.from_stored(row.state)
        self._jobs[row.job_id] = CronJob(row.job_id, spec, row.created_at, row.updated_at, state)

    async def run(self) -> None:
        """Sleep until the next job is due, fire what is due, repeat; until cancelled."""
        while True:
            self._rearm.clear()
            try:
                async with asyncio.timeout(self._sleep_s()):
                    await self._rearm.wait()
            except TimeoutError:
                pass
            self.wakeups += 1
            await self.fire_due()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Wait for runs in flight to record their end (the agent side aborts them first)."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in pending:
                task.cancel()  # left `running` in state.db: the next start marks it interrupted
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    def _sleep_s(self) -> float:
        due = self._heap.next_due_ms() if self.enabled else None
        if due is None:
            return self._max_sleep_s
        # One millisecond past the instant: the timer never wakes just before it.
        return min(max(due - self._clock() + 1, 0) / 1000, self._max_sleep_s)

    # -- reading --------------------------------------------------------------------

    def get(self, job_id: str) -> CronJob | None:
        """Return the job `job_id`, or None."""
        return self._jobs.get(job_id)

    def jobs(self, *, include_disabled: bool = False) -> list[dict[str, Any]]:
        """Return the jobs, the next to run first, then those with no next run."""
        chosen = [j for j in self._jobs.values() if include_disabled or j.spec.enabled]
        never = 1 << 62
        chosen.sort(key=lambda j: (j.state.next_run_ms or never, j.label, j.id))
        return [job.wire() for job in chosen]

    def status(self) -> dict[str, Any]:
        """Return `cron.status`: whether the scheduler runs, how many jobs, its next wake."""
        return {
            "enabled": self.enabled,
            "jobs": len(self._jobs),
            "nextWakeAtMs": self._heap.next_due_ms() if self.enabled else None,
            "timezone": self.default_tz,
        }

    async def runs_page(
        self,
        job_ids: Sequence[str] | None,
        *,
        statuses: Sequence[str] | None = None,
        run_id: str | None = None,
        newest_first: bool = True,
        offset: int = 0,
        limit: int = CRON_RUNS_MAX_LIMIT,
    ) -> tuple[int, list[dict[str, Any]]]:
        """Return how many ended runs match and one page of them (each with its job's name).

        `job_ids` None means every job's runs, a removed job's included (for 7 days).
        """
        read = partial(
            page_runs,
            job_ids=job_ids,
            statuses=statuses,
            run_id=run_id,
            newest_first=newest_first,
            offset=offset,
            limit=limit,
        )
        total, rows = await self._store.read(read)
        entries = []
        for row in rows:
            entry = run_entry(row)
            job = self._jobs.get(row.job_id)
            if job is not None and job.spec.name is not None:
                entry["jobName"] = job.spec.name
            entries.append(entry)
        return total, entries

    async def check_known(self, job_id: str) -> None:
        """Check that the job exists, or was removed within the last 7 days.

        Raises:
            UnknownJob: neither.
        """
        if job_id in self._jobs:
            return
        cutoff = self._clock() - KEEP_REMOVED_MS
        if not await self._store.read(partial(job_known, job_id=job_id, removed_after=cutoff)):
            raise UnknownJob(job_id)

    # -- changing -------------------------------------------------------------------

    async def add(self, data: dict[str, Any]) -> dict[str, Any]:
        """Save a new job from its wire fields and return it.

        Raises:
            JobError: the job is not valid; nothing was saved.
        """
        async with self._lock:
            now = self._clock()
            spec = JobSpec.from_wire(data, default_tz=self.default_tz, created_ms=now)
            _refuse_past_at(spec, now)
            job = CronJob(self._new_id(), spec, now, now)
            if spec.enabled:
                job.state.next_run_ms = spec.schedule.next_after(now)
            await self._store.write(lambda conn: upsert_job(conn, _row(job)))
            self._jobs[job.id] = job
            self._schedule(job)
            self._changed(job, "added")
            return job.wire()

    async def update(self, job_id: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Apply a patch of wire fields to a job and return it.

        Raises:
            UnknownJob: no such job.
            JobError: the patched job is not valid; nothing was saved.
        """
        from .jobs import merge_patch

        async with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise UnknownJob(job_id)
            now = self._clock()
            merged = merge_patch(job.spec.wire(), patch)
            spec = JobSpec.from_wire(merged, default_tz=self.default_tz, created_ms=job.created_ms)
            state = job.state.copy()
            rescheduled = spec.schedule != job.spec.schedule
            if rescheduled:
                _refuse_past_at(spec, now)
            if not spec.enabled:
                state.next_run_ms = None
            elif rescheduled or not job.spec.enabled or state.next_run_ms is None:
                state.next_run_ms = spec.schedule.next_after(now)
            updated = CronJob(job.id, spec, job.created_ms, now, state)
            await self._store.write(lambda conn: upsert_job(conn, _row(updated)))
            self._jobs[job.id] = updated
            self._schedule(updated)
            self._changed(updated, "updated")
            return updated.wire()

    async def remove(self, job_id: str) -> bool:
        """Remove a job (its runs stay readable for 7 days); return whether it existed."""
        async with self._lock:
            now = self._clock()
            known = job_id in self._jobs

            def write(conn: Any) -> bool:
                purge_removed(conn, now - KEEP_REMOVED_MS)
                return remove_job(conn, job_id, now)

            removed = await self._store.write(write) if known else False
            job = self._jobs.pop(job_id, None)
            self._heap.set(job_id, None)
            if removed and job is not None:
                self._announce({"jobId": job_id, "action": "removed"})
                self._rearm.set()
            return removed

    async def run_now(self, job_id: str, *, due_only: bool = False) -> dict[str, Any]:
        """Start a run of the job now (`due_only`: only if it is due); return its id.

        Raises:
            UnknownJob: no such job.
        """
        async with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise UnknownJob(job_id)
            now = self._clock()
            if due_only:
                due = job.state.next_run_ms
                if not job.spec.enabled or due is None or due > now:
                    return {"ok": True, "ran": False, "reason": "not-due"}
                self._heap.set(job_id, None)
                started = await self._fire([(job_id, due)], now)
            else:
                started = await self._fire([(job_id, None)], now)
        run_id, ran, reason = started[0]
        result: dict[str, Any] = {"ok": True, "runId": run_id, "ran": ran}
        if reason is not None:
            result["reason"] = reason
        return result

    # -- firing ---------------------------------------------------------------------

    async def fire_due(self) -> None:
        """Fire every job due by now (the timer calls this; so may a test's fake clock)."""
        async with self._lock:
            now = self._clock()
            due = self._heap.pop_due(now)
            if due:
                await self._fire(due, now)

    async def _fire(
        self, due: Sequence[tuple[str, int | None]], now: int
    ) -> list[tuple[str, bool, str | None]]:
        """Start or skip each `(job, due instant or None for by hand)`; the lock is held.

        Returns:
            Per job: the run id, whether it runs, and why not.
        """
        rows: list[RunRow] = []
        states: dict[str, JobState] = {}
        starts: list[RunStart] = []
        scheduled: list[CronJob] = []
        answers: list[tuple[str, bool, str | None]] = []
        for job_id, due_ms in due:
            job = self._jobs.get(job_id)
            if job is None:
                continue
            fire = decide_fire(job, due_ms, now, self._active.get(job_id, 0))
            trigger = RunTrigger.MANUAL if due_ms is None else RunTrigger.SCHEDULE
            state = states.get(job_id) or job.state.copy()
            if due_ms is not None:
                state.last_scheduled_ms = max(due_ms, state.last_scheduled_ms or due_ms)
                scheduled.append(job)
            run_id = self._new_id()
            if fire.kind is FireKind.RUN:
                alone = not self._active.get(job_id)
                start = RunStart(run_id, job, trigger, now, due_ms, fire.late, alone)
                starts.append(start)
                rows.append(
                    RunRow(run_id, job_id, RunStatus.RUNNING, trigger, now, due_ms, fire.late)
                )
                state.running_since_ms = state.running_since_ms or now
                state.last_run_ms = now
                self._active[job_id] = self._active.get(job_id, 0) + 1
            else:
                rows.append(
                    RunRow(
                        run_id,
                        job_id,
                        RunStatus.SKIPPED,
                        trigger,
                        now,
                        due_ms,
                        fire.late,
                        finished_at=now,
                        duration_ms=0,
                        error=fire.reason,
                    )
                )
                state.last_status = RunStatus.SKIPPED
                state.last_error = fire.reason
            states[job_id] = state
            answers.append((run_id, fire.kind is FireKind.RUN, fire.reason))
        if not rows:
            return answers

        def begin(conn: Any) -> None:
            insert_runs(conn, rows)
            save_job_states(conn, [(i, s.stored()) for i, s in states.items()])

        try:
            await self._store.write(begin)
        except BaseException:
            for start in starts:
                self._release(start.job.id)
            raise
        for job_id, state in states.items():
            self._jobs[job_id].state = state
        for row in rows:
            self._count(row.status)
        for start in starts:
            self._announce(
                {
                    "jobId": start.job.id,
                    "action": "started",
                    "runAtMs": start.started_ms,
                    "runId": start.run_id,
                }
            )
        # One turn of the loop first: the `started` events go out before a thousand runs
        # (and then the next instants) take the CPU. The runs are recorded already.
        await asyncio.sleep(0)
        for start in starts:
            task = asyncio.create_task(self._execute(start), name=f"cron-run-{start.run_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        skipped = [row for row in rows if row.status == RunStatus.SKIPPED]
        if scheduled:
            skipped = await self._advance(scheduled, now, skipped)
        for row in skipped:
            self._announce(_finished_event(row, None))
        return answers

    async def _advance(
        self, jobs: Iterable[CronJob], now: int, skipped: list[RunRow]
    ) -> list[RunRow]:
        """Compute and store the next instant of jobs whose due instant was just consumed.

        Returns:
            The `skipped` runs with the next instant of their job (stored with them).
        """
        states: list[tuple[CronJob, JobState]] = []
        slice_ends = time.perf_counter() + _ADVANCE_SLICE_S
        for job in jobs:
            if time.perf_counter() > slice_ends:
                await asyncio.sleep(0)  # let the started runs and their events go out
                slice_ends = time.perf_counter() + _ADVANCE_SLICE_S
            state = job.state.copy()
            after = max(now, state.last_scheduled_ms or now)
            state.next_run_ms = job.spec.schedule.next_after(after) if job.spec.enabled else None
            states.append((job, state))
        next_of = {job.id: state.next_run_ms for job, state in states}
        skipped = [replace(row, next_run_at=next_of.get(row.job_id)) for row in skipped]

        def write(conn: Any) -> None:
            save_job_states(conn, [(job.id, state.stored()) for job, state in states])
            for row in skipped:
                update_run(conn, row)

        await self._store.write(write)
        for job, state in states:
            if self._jobs.get(job.id) is job:
                job.state = state
                self._schedule(job)
        return skipped

    async def _execute(self, start: RunStart) -> None:
        try:
            outcome = await self._runner.run(start)
        except Exception:
            logger.exception("cron job %s failed unexpectedly", start.job.label)
            outcome = RunOutcome(
                RunStatus.ERROR, "the run failed unexpectedly; see the gateway log"
            )
        await self._finish(start, outcome)

    async def _finish(self, start: RunStart, outcome: RunOutcome) -> None:
        async with self._lock:
            now = self._clock()
            job_id = start.job.id
            active = self._release(job_id)
            row = RunRow(
                start.run_id,
                job_id,
                outcome.status,
                start.trigger,
                start.started_ms,
                start.scheduled_ms,
                start.late,
                finished_at=now,
                duration_ms=max(now - start.started_ms, 0),
                error=outcome.error,
                summary=outcome.summary,
                session_key=outcome.session_key,
            )
            job = self._jobs.get(job_id)
            if job is None:  # removed while it ran: only the run is recorded
                await self._store.write(lambda conn: update_run(conn, row))
                self._count(row.status)
                self._announce(_finished_event(row, None))
                return
            state = job.state.copy()
            failed = outcome.status is RunStatus.ERROR
            if failed:
                state.consecutive_errors += 1
            elif outcome.status is RunStatus.OK:
                state.consecutive_errors = 0
            state.last_status = outcome.status
            state.last_error = outcome.error
            state.last_duration_ms = row.duration_ms
            state.last_run_late = start.late
            if active == 0:
                state.running_since_ms = None
            state.next_run_ms = next_after_run(replace(job, state=state), now, failed)
            delete = job.spec.delete_after_run and outcome.status is RunStatus.OK
            row = replace(row, next_run_at=None if delete else state.next_run_ms)

            def end(conn: Any) -> None:
                update_run(conn, row)
                trim_runs(conn, job_id, RUNS_KEPT)
                if delete:
                    remove_job(conn, job_id, now)
                else:
                    save_job_states(conn, [(job_id, state.stored())])

            await self._store.write(end)
            self._count(row.status)
            if delete:
                self._jobs.pop(job_id, None)
                self._heap.set(job_id, None)
            else:
                job.state = state
                self._schedule(job)
            self._announce(_finished_event(row, outcome.session_key))
            if delete:
                self._announce({"jobId": job_id, "action": "removed"})

    # -- helpers --------------------------------------------------------------------

    def _release(self, job_id: str) -> int:
        active = self._active.get(job_id, 1) - 1
        if active <= 0:
            self._active.pop(job_id, None)
            return 0
        self._active[job_id] = active
        return active

    def _schedule(self, job: CronJob) -> None:
        due = job.state.next_run_ms if job.spec.enabled else None
        before = self._heap.next_due_ms()
        self._heap.set(job.id, due)
        if due is not None and (before is None or due < before):
            self._rearm.set()  # earlier than the timer is set for

    def _changed(self, job: CronJob, action: str) -> None:
        event: dict[str, Any] = {"jobId": job.id, "action": action}
        if job.state.next_run_ms is not None:
            event["nextRunAtMs"] = job.state.next_run_ms
        self._announce(event)

    def _count(self, status: str) -> None:
        self.runs_by_status[status] = self.runs_by_status.get(status, 0) + 1


def _refuse_past_at(spec: JobSpec, now: int) -> None:
    schedule = spec.schedule
    if isinstance(schedule, AtSchedule) and schedule.at_ms <= now:
        from ..protocol.timefmt import format_time_ms

        raise JobError(f"atMs {format_time_ms(schedule.at_ms)} is in the past; give a future time")


def _row(job: CronJob) -> JobRow:
    return JobRow(job.id, job.spec.wire(), job.state.stored(), job.created_ms, job.updated_ms)


def _finished_event(row: RunRow, session_key: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "jobId": row.job_id,
        "action": "finished",
        "runAtMs": row.started_at,
        "durationMs": row.duration_ms or 0,
        "status": row.status,
        "runId": row.run_id,
    }
    if row.error is not None:
        event["error"] = row.error
    if row.summary is not None:
        event["summary"] = row.summary
    if session_key is not None:
        event["sessionKey"] = session_key
    if row.next_run_at is not None:
        event["nextRunAtMs"] = row.next_run_at
    return event
