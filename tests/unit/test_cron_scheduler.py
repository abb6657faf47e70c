"""The scheduler's decisions without a clock: the heap, overlap, catch-up, backoff."""

from __future__ import annotations

from typing import Any

from clawgate.automation.jobs import Backoff, CronJob, JobSpec
from clawgate.automation.scheduler import (
    LATE_AFTER_MS,
    DueHeap,
    FireKind,
    backoff_ms,
    decide_fire,
    next_after_run,
)

MINUTE = 60_000


def job(**fields: Any) -> CronJob:
    data = {"schedule": {"kind": "every", "everyMs": MINUTE, "anchorMs": 0}}
    data["payload"] = {"kind": "agentTurn", "message": "hi"}
    spec = JobSpec.from_wire({**data, **fields}, default_tz="UTC", created_ms=0)
    return CronJob("j", spec, 0, 0)


def test_the_heap_gives_the_earliest_due_job_and_forgets_moved_ones() -> None:
    heap = DueHeap()
    heap.set("a", 300)
    heap.set("b", 100)
    heap.set("b", 500)  # moved later: its old instant no longer counts
    heap.set("c", 200)
    heap.set("c", None)  # disabled
    assert heap.next_due_ms() == 300
    assert heap.pop_due(400) == [("a", 300)]
    assert heap.next_due_ms() == 500 and len(heap) == 1


def test_the_heap_pops_every_job_due_at_once_in_order() -> None:
    heap = DueHeap()
    for index in range(1000):
        heap.set(f"j{index}", 1000 - index % 7)
    due = heap.pop_due(1000)
    assert len(due) == 1000 and [d for _, d in due] == sorted(d for _, d in due)
    assert heap.next_due_ms() is None


def test_a_due_job_runs_on_time() -> None:
    fire = decide_fire(job(), due_ms=MINUTE, now_ms=MINUTE + 5, active_runs=0)
    assert fire.kind is FireKind.RUN and not fire.late


def test_a_job_still_running_is_skipped_by_default() -> None:
    fire = decide_fire(job(), due_ms=MINUTE, now_ms=MINUTE, active_runs=1)
    assert fire.kind is FireKind.SKIP and "still running (overlap skip)" in (fire.reason or "")


def test_overlap_queue_lets_one_run_wait_but_not_two() -> None:
    queued = job(overlap="queue")
    assert decide_fire(queued, MINUTE, MINUTE, active_runs=1).kind is FireKind.RUN
    assert decide_fire(queued, MINUTE, MINUTE, active_runs=2).kind is FireKind.SKIP


def test_a_late_run_catches_up_once_marked_late() -> None:
    fire = decide_fire(job(), due_ms=MINUTE, now_ms=MINUTE + LATE_AFTER_MS + 1, active_runs=0)
    assert fire.kind is FireKind.RUN and fire.late


def test_a_late_run_without_catch_up_is_skipped_and_says_so() -> None:
    fire = decide_fire(job(catchUp="none"), MINUTE, MINUTE + 3_600_000, active_runs=0)
    assert fire.kind is FireKind.SKIP and fire.late
    assert "missed the run due at 1970-01-01T00:01:00.000Z" in (fire.reason or "")


def test_a_run_by_hand_is_never_late() -> None:
    fire = decide_fire(job(catchUp="none"), due_ms=None, now_ms=10 * 3_600_000, active_runs=0)
    assert fire.kind is FireKind.RUN and not fire.late


def test_backoff_grows_to_an_hour_and_stays() -> None:
    steps = [backoff_ms(Backoff.EXPONENTIAL, n) // 1000 for n in range(7)]
    assert steps == [0, 30, 60, 300, 900, 3600, 3600]
    assert backoff_ms(Backoff.NONE, 5) == 0


def test_after_errors_the_next_run_waits_for_the_backoff_on_the_schedule() -> None:
    failing = job()
    failing.state.next_run_ms = 2 * MINUTE
    failing.state.consecutive_errors = 3  # a five-minute pause
    assert next_after_run(failing, finished_ms=MINUTE + 1, failed=True) == 7 * MINUTE
    assert next_after_run(failing, finished_ms=MINUTE + 1, failed=False) == 2 * MINUTE


def test_without_backoff_a_failing_job_keeps_its_schedule() -> None:
    failing = job(backoff="none")
    failing.state.next_run_ms = 2 * MINUTE
    failing.state.consecutive_errors = 9
    assert next_after_run(failing, finished_ms=MINUTE, failed=True) == 2 * MINUTE
