"""Persist cron jobs and their runs (functions run on the store's owner thread; spec §10.8).

A job row is its wire fields as JSON (`spec`), its state as JSON (`state`) and its times;
a removed job keeps its row with `removed_at` set, so `cron.runs` still answers for it for
a week, then `purge_removed` deletes it and its runs. Runs are rows in `cron_runs`; a run
still `running` when the gateway starts was interrupted (`interrupt_running`). Turning
rows into jobs is the automation package's business, not this module's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

__all__ = [
    "JobRow",
    "RunRow",
    "delete_job",
    "insert_runs",
    "interrupt_running",
    "job_known",
    "load_jobs",
    "page_runs",
    "purge_removed",
    "remove_job",
    "save_job_states",
    "trim_runs",
    "update_run",
    "upsert_job",
]


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job: its wire fields and state as JSON objects."""

    job_id: str
    spec: dict[str, Any]
    state: dict[str, Any]
    created_at: int
    updated_at: int


@dataclass(slots=True)
class RunRow:
    """One run of a job (not frozen: a due pass builds a thousand at once, and frozen
    dataclasses are several times slower to construct)."""

    run_id: str
    job_id: str
    status: str
    trigger: str
    started_at: int
    scheduled_at: int | None = None
    late: bool = False
    finished_at: int | None = None
    duration_ms: int | None = None
    error: str | None = None
    summary: str | None = None
    session_key: str | None = None
    next_run_at: int | None = None


_RUN_COLUMNS = (
    "run_id, job_id, status, trigger, started_at, scheduled_at, late, finished_at,"
    " duration_ms, error, summary, session_key, next_run_at"
)


def _json(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode()


def load_jobs(conn: sqlite3.Connection, after: str = "", limit: int = -1) -> list[JobRow]:
    """Return up to `limit` jobs that are not removed, by id, with ids after `after`."""
    rows = conn.execute(
        "SELECT job_id, spec, state, created_at, updated_at FROM cron_jobs"
        " WHERE removed_at IS NULL AND job_id > ? ORDER BY job_id LIMIT ?",
        (after, limit),
    )
    return [
        JobRow(job_id, orjson.loads(spec), orjson.loads(state), created, updated)
        for job_id, spec, state, created, updated in rows
    ]


def upsert_job(conn: sqlite3.Connection, row: JobRow) -> None:
    """Insert a job or replace its spec and state."""
    conn.execute(
        "INSERT INTO cron_jobs (job_id, spec, state, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET spec = excluded.spec,"
        " state = excluded.state, updated_at = excluded.updated_at",
        (row.job_id, _json(row.spec), _json(row.state), row.created_at, row.updated_at),
    )


def save_job_states(conn: sqlite3.Connection, states: Iterable[tuple[str, dict[str, Any]]]) -> None:
    """Replace the state of each `(job_id, state)`."""
    conn.executemany(
        "UPDATE cron_jobs SET state = ? WHERE job_id = ?",
        [(_json(state), job_id) for job_id, state in states],
    )


def remove_job(conn: sqlite3.Connection, job_id: str, now: int) -> bool:
    """Mark a job removed (its runs stay readable); return whether it existed."""
    cursor = conn.execute(
        "UPDATE cron_jobs SET removed_at = ?, updated_at = ? WHERE job_id = ?"
        " AND removed_at IS NULL",
        (now, now, job_id),
    )
    return cursor.rowcount > 0


def delete_job(conn: sqlite3.Connection, job_id: str) -> None:
    """Delete a job and its runs at once."""
    conn.execute("DELETE FROM cron_runs WHERE job_id = ?", (job_id,))
    conn.execute("DELETE FROM cron_jobs WHERE job_id = ?", (job_id,))


def purge_removed(conn: sqlite3.Connection, removed_before: int) -> int:
    """Delete jobs removed before `removed_before`, and their runs; return how many."""
    ids = [
        (job_id,)
        for (job_id,) in conn.execute(
            "SELECT job_id FROM cron_jobs WHERE removed_at IS NOT NULL AND removed_at < ?",
            (removed_before,),
        )
    ]
    conn.executemany("DELETE FROM cron_runs WHERE job_id = ?", ids)
    conn.executemany("DELETE FROM cron_jobs WHERE job_id = ?", ids)
    return len(ids)


def job_known(conn: sqlite3.Connection, job_id: str, removed_after: int) -> bool:
    """Whether the job exists, or was removed after `removed_after`."""
    row = conn.execute(
        "SELECT 1 FROM cron_jobs WHERE job_id = ? AND (removed_at IS NULL OR removed_at > ?)",
        (job_id, removed_after),
    ).fetchone()
    return row is not None


def insert_runs(conn: sqlite3.Connection, runs: Iterable[RunRow]) -> None:
    """Insert new runs."""
    conn.executemany(
        f"INSERT INTO cron_runs ({_RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [_run_values(run) for run in runs],
    )


def update_run(conn: sqlite3.Connection, run: RunRow) -> None:
    """Store how a run ended."""
    conn.execute(
        "UPDATE cron_runs SET status = ?, finished_at = ?, duration_ms = ?, error = ?,"
        " summary = ?, session_key = ?, next_run_at = ? WHERE run_id = ?",
        (
            run.status,
            run.finished_at,
            run.duration_ms,
            run.error,
            run.summary,
            run.session_key,
            run.next_run_at,
            run.run_id,
        ),
    )


def interrupt_running(conn: sqlite3.Connection, now: int, error: str) -> list[RunRow]:
    """Mark every run still `running` as `interrupted`; return them as they are now."""
    rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM cron_runs WHERE status = 'running'").fetchall()
    conn.execute(
        "UPDATE cron_runs SET status = 'interrupted', finished_at = ?,"
        " duration_ms = MAX(? - started_at, 0), error = ? WHERE status = 'running'",
        (now, now, error),
    )
    return [
        replace(
            _run(row),
            status="interrupted",
            finished_at=now,
            duration_ms=max(now - row[4], 0),
            error=error,
        )
        for row in rows
    ]


def page_runs(
    conn: sqlite3.Connection,
    *,
    job_ids: Sequence[str] | None,
    statuses: Sequence[str] | None,
    run_id: str | None,
    newest_first: bool,
    offset: int,
    limit: int,
) -> tuple[int, list[RunRow]]:
    """Return how many ended runs match, and one page of them.

    Args:
        job_ids: only these jobs' runs (None: every job's).
        statuses: only runs that ended so (None: any).
        run_id: only this run.
        newest_first: the order, by start time.
        offset: runs skipped.
        limit: the most runs returned.
    """
    where = ["status != 'running'"]
    args: list[Any] = []
    if job_ids is not None:
        where.append("job_id IN (SELECT value FROM json_each(?))")
        args.append(orjson.dumps(list(job_ids)).decode())
    if statuses is not None:
        where.append("status IN (SELECT value FROM json_each(?))")
        args.append(orjson.dumps(list(statuses)).decode())
    if run_id is not None:
        where.append("run_id = ?")
        args.append(run_id)
    clause = " AND ".join(where)
    (total,) = conn.execute(f"SELECT COUNT(*) FROM cron_runs WHERE {clause}", args).fetchone()
    order = "DESC" if newest_first else "ASC"
    rows = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM cron_runs WHERE {clause}"
        f" ORDER BY started_at {order}, rowid {order} LIMIT ? OFFSET ?",
        [*args, limit, offset],
    )
    return total, [_run(row) for row in rows]


def trim_runs(conn: sqlite3.Connection, job_id: str, keep: int) -> None:
    """Keep only a job's newest `keep` runs."""
    conn.execute(
        "DELETE FROM cron_runs WHERE job_id = ? AND rowid IN (SELECT rowid FROM cron_runs"
        " WHERE job_id = ? ORDER BY started_at DESC, rowid DESC LIMIT -1 OFFSET ?)",
        (job_id, job_id, keep),
    )


def _run_values(run: RunRow) -> tuple[Any, ...]:
    return (
        run.run_id,
        run.job_id,
        run.status,
        run.trigger,
        run.started_at,
        run.scheduled_at,
        int(run.late),
        run.finished_at,
        run.duration_ms,
        run.error,
        run.summary,
        run.session_key,
        run.next_run_at,
    )


def _run(row: tuple[Any, ...]) -> RunRow:
    values = list(row)
    values[6] = bool(values[6])
    return RunRow(*values)
