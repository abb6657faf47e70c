"""The gateway's own records: settings kept across restarts and queued system events.

Functions here run on the store's owner thread, passed to `StateStore.read`/`write`.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

__all__ = [
    "append_system_event",
    "clear_system_events",
    "consume_system_events",
    "cron_in_use",
    "get_value",
    "load_system_events",
    "set_value",
]

GATEWAY_NAMESPACE = "gateway"


def get_value(conn: sqlite3.Connection, key: str) -> str | None:
    """Return one gateway setting, or None."""
    row = conn.execute(
        "SELECT value FROM kv WHERE namespace = ? AND key = ?", (GATEWAY_NAMESPACE, key)
    ).fetchone()
    return None if row is None else str(row[0])


def set_value(conn: sqlite3.Connection, key: str, value: str) -> None:
    """Store one gateway setting."""
    conn.execute(
        "INSERT INTO kv (namespace, key, value, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at",
        (GATEWAY_NAMESPACE, key, value, time.time()),
    )


def load_system_events(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Return the queued system events, oldest first."""
    rows = conn.execute("SELECT text, ts FROM system_events ORDER BY id").fetchall()
    return [{"text": text, "ts": ts} for text, ts in rows]


def append_system_event(conn: sqlite3.Connection, text: str, ts: int, keep: int) -> None:
    """Queue one system event, keeping only the newest `keep`."""
    conn.execute("INSERT INTO system_events (text, ts) VALUES (?, ?)", (text, ts))
    conn.execute(
        "DELETE FROM system_events WHERE id NOT IN "
        "(SELECT id FROM system_events ORDER BY id DESC LIMIT ?)",
        (keep,),
    )


def clear_system_events(conn: sqlite3.Connection) -> None:
    """Remove every queued system event (an agent turn consumed them)."""
    conn.execute("DELETE FROM system_events")


def consume_system_events(conn: sqlite3.Connection, count: int) -> None:
    """Remove the `count` oldest queued system events (an agent turn read them)."""
    conn.execute(
        "DELETE FROM system_events WHERE id IN (SELECT id FROM system_events ORDER BY id LIMIT ?)",
        (count,),
    )


def cron_in_use(conn: sqlite3.Connection) -> bool:
    """Whether the cron tables hold anything (a job, a removed job's runs, a run cut off)."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM cron_jobs) OR EXISTS (SELECT 1 FROM cron_runs)"
    ).fetchone()
    return bool(row[0])
