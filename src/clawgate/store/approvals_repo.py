"""Persist closed exec approvals (functions run on the store's owner thread)."""

from __future__ import annotations

import json
import sqlite3

from ..protocol.approval_history import ClosedApproval, HistoryCursor

__all__ = ["list_closed", "record_closed"]


def record_closed(conn: sqlite3.Connection, approval: ClosedApproval, keep: int) -> None:
    """Add a closed approval and drop all but the newest `keep` (by close time, then id)."""
    conn.execute(
        "INSERT OR IGNORE INTO exec_approval_history (approval_id, resolved_at_ms, record)"
        " VALUES (?, ?, ?)",
        (approval.id, approval.resolved_at_ms, json.dumps(approval.record())),
    )
    oldest_kept = conn.execute(
        "SELECT resolved_at_ms, approval_id FROM exec_approval_history"
        " ORDER BY resolved_at_ms DESC, approval_id DESC LIMIT 1 OFFSET ?",
        (keep - 1,),
    ).fetchone()
    if oldest_kept is not None:
        conn.execute(
            "DELETE FROM exec_approval_history"
            " WHERE resolved_at_ms < ? OR (resolved_at_ms = ? AND approval_id < ?)",
            (oldest_kept[0], oldest_kept[0], oldest_kept[1]),
        )


def list_closed(
    conn: sqlite3.Connection, after: HistoryCursor | None, limit: int
) -> list[ClosedApproval]:
    """Return up to `limit` closed approvals, newest first, those older than `after` if given."""
    if after is None:
        rows = conn.execute(
            "SELECT record FROM exec_approval_history"
            " ORDER BY resolved_at_ms DESC, approval_id DESC LIMIT ?",
            (limit,),
        )
    else:
        rows = conn.execute(
            "SELECT record FROM exec_approval_history"
            " WHERE resolved_at_ms < ? OR (resolved_at_ms = ? AND approval_id < ?)"
            " ORDER BY resolved_at_ms DESC, approval_id DESC LIMIT ?",
            (after.resolved_at_ms, after.resolved_at_ms, after.id, limit),
        )
    return [ClosedApproval.from_record(json.loads(row[0])) for row in rows]
