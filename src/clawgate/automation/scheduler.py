"""The scheduler's decisions: which job is due next, and what a due job does (pure).

Invariants (the service in `service.py` keeps them by persisting before it acts):
- One timer: `DueHeap.next_due_ms()` is the only instant the scheduler sleeps towards; it
  never polls the jobs.
- A due instant is consumed once. Firing a job records the instant it was due for
  (`JobState.last_scheduled_ms`) together with the run, before the run starts; the job's
  next instant is always computed strictly after it, so a job never runs twice for one
  instant, across restarts too.
- No bursts. However long the gateway slept, was down or saw its wall clock jump, a job
  fires at most once per pass, and its next instant is computed from the present: the
  runs it missed in between are not replayed (`catchUp` decides about the first one).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from ..protocol.timefmt import format_time_ms
from .jobs import Backoff, CatchUp, CronJob, Overlap

__all__ = [
    "BACKOFF_STEPS_MS",
    "LATE_AFTER_MS",
    "DueHeap",
    "Fire",
    "FireKind",
    "backoff_ms",
    "decide_fire",
    "next_after_run",
]

#: A run that starts this long after it was due is late: `catchUp` decides whether it runs.
LATE_AFTER_MS: Final = 60_000
#: The pause after 1, 2, 3, 4, 5+ errors in a row (`backoff` "exponential"), as OpenClaw.
BACKOFF_STEPS_MS: Final = (30_000, 60_000, 300_000, 900_000, 3_600_000)


class DueHeap:
    """The enabled jobs' next due instants, earliest first (lazy deletion)."""

    def __init__(self) -> None:
        self._due: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._due)

    def set(self, job_id: str, due_ms: int | None) -> None:
        """Make `job_id` due at `due_ms`, or not due at all when it is None."""
        if due_ms is None:
            self._due.pop(job_id, None)
            return
        if self._due.get(job_id) == due_ms:
            return
        self._due[job_id] = due_ms
        heapq.heappush(self._heap, (due_ms, job_id))
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._due):
            self._heap = [(due, job) for job, due in self._due.items()]
            heapq.heapify(self._heap)

    def next_due_ms(self) -> int | None:
        """Return the earliest due instant, or None when no job is due ever."""
        heap = self._heap
        while heap and self._due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # a stale entry: the job moved or left
        return heap[0][0] if heap else None

    def pop_due(self, now_ms: int) -> list[tuple[str, int]]:
        """Remove and return every `(job_id, due_ms)` due at or before `now_ms`, in order."""
        due: list[tuple[str, int]] = []
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            due_ms, job_id = heapq.heappop(heap)
            if self._due.get(job_id) == due_ms:
                del self._due[job_id]
                due.append((job_id, due_ms))
        return due


class FireKind(StrEnum):
    """What a due job does."""

    RUN = "run"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Fire:
    """The decision for one due job."""

    kind: FireKind
    late: bool = False
    reason: str | None = None


def decide_fire(job: CronJob, due_ms: int | None, now_ms: int, active_runs: int) -> Fire:
    """Decide whether a job due at `due_ms` (None: started by hand) runs at `now_ms`."""
    limit = 1 if job.spec.overlap is Overlap.SKIP else 2
    if active_runs >= limit:
        what = "still running" if limit == 1 else "running and one more run is waiting"
        return Fire(
            FireKind.SKIP, reason=f"the previous run is {what} (overlap {job.spec.overlap})"
        )
    late = due_ms is not None and now_ms - due_ms > LATE_AFTER_MS
    if late and job.spec.catch_up is CatchUp.NONE:
        assert due_ms is not None
        return Fire(
            FireKind.SKIP,
            late=True,
            reason=(
                f"missed the run due at {format_time_ms(due_ms)}: the gateway was down, "
                "asleep or its clock jumped (catchUp none)"
            ),
        )
    return Fire(FireKind.RUN, late=late)


def backoff_ms(policy: Backoff, consecutive_errors: int) -> int:
    """Return the pause a job takes after `consecutive_errors` errors in a row."""
    if policy is Backoff.NONE or consecutive_errors <= 0:
        return 0
    return BACKOFF_STEPS_MS[min(consecutive_errors, len(BACKOFF_STEPS_MS)) - 1]


def next_after_run(job: CronJob, finished_ms: int, failed: bool) -> int | None:
    """Return the job's next due instant once a run ended.

    After an error the schedule's next instant is pushed back to at least the backoff
    pause (the job stays enabled; a success ends the streak). A job with no next instant
    (an `at` that ran) stays without one.
    """
    scheduled = job.state.next_run_ms
    if scheduled is None or not failed:
        return scheduled
    pause = backoff_ms(job.spec.backoff, job.state.consecutive_errors)
    if pause == 0:
        return scheduled
    return max(scheduled, job.spec.schedule.next_after(finished_ms + pause - 1) or scheduled)
