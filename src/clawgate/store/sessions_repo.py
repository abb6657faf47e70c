"""Persist chat sessions and their transcripts (functions run on the store's owner thread)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

__all__ = [
    "SessionRecord",
    "StoredMessage",
    "append_message",
    "delete_session",
    "insert_session",
    "load_message_times",
    "load_messages",
    "load_messages_after",
    "load_sessions",
    "reset_session",
]


@dataclass(slots=True)
class SessionRecord:
    """One row of `sessions`."""

    key: str
    session_id: str
    agent_id: str
    label: str | None
    model: str | None
    created_at: int
    updated_at: int
    message_count: int = 0


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One transcript message; `seq` orders it and pages `chat.history`."""

    seq: int
    message_id: str
    role: str
    text: str
    label: str | None
    run_id: str | None
    ts: int


_SESSION_COLUMNS = "key, session_id, agent_id, label, model, created_at, updated_at, message_count"
_MESSAGE_COLUMNS = "seq, message_id, role, text, label, run_id, ts"


def load_sessions(conn: sqlite3.Connection) -> list[SessionRecord]:
    """Return every session."""
    rows = conn.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions").fetchall()
    return [SessionRecord(*row) for row in rows]


def insert_session(conn: sqlite3.Connection, record: SessionRecord) -> None:
    """Insert a new session row."""
    conn.execute(
        f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            record.key,
            record.session_id,
            record.agent_id,
            record.label,
            record.model,
            record.created_at,
            record.updated_at,
            record.message_count,
        ),
    )


def append_message(
    conn: sqlite3.Connection,
    session_key: str,
    session_id: str,
    message: StoredMessage,
) -> int:
    """Append `message` to the transcript, bump the session's counters; return its `seq`."""
    cursor = conn.execute(
        "INSERT INTO messages (message_id, session_id, role, text, label, run_id, ts)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            message.message_id,
            session_id,
            message.role,
            message.text,
            message.label,
            message.run_id,
            message.ts,
        ),
    )
    conn.execute(
        "UPDATE sessions SET message_count = message_count + 1, updated_at = ?"
        " WHERE key = ? AND session_id = ?",
        (message.ts, session_key, session_id),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def load_messages(
    conn: sqlite3.Connection,
    session_id: str,
    *,
    limit: int,
    before: int | None = None,
) -> tuple[list[StoredMessage], bool]:
    """Return up to `limit` newest messages older than `before`, oldest first, and more?"""
    bound = before if before is not None else -1
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages"
        " WHERE session_id = ? AND (? < 0 OR seq < ?) ORDER BY seq DESC LIMIT ?",
        (session_id, bound, bound, limit + 1),
    ).fetchall()
    more = len(rows) > limit
    messages = [StoredMessage(*row) for row in rows[:limit]]
    messages.reverse()
    return messages, more


def load_messages_after(
    conn: sqlite3.Connection, session_id: str, *, after: int, limit: int
) -> tuple[list[StoredMessage], bool]:
    """Return up to `limit` oldest messages newer than `after`, oldest first, and more?"""
    rows = conn.execute(
        f"SELECT {_MESSAGE_COLUMNS} FROM messages"
        " WHERE session_id = ? AND seq > ? ORDER BY seq ASC LIMIT ?",
        (session_id, after, limit + 1),
    ).fetchall()
    return [StoredMessage(*row) for row in rows[:limit]], len(rows) > limit


def load_message_times(
    conn: sqlite3.Connection, start_ms: int, end_ms: int
) -> list[tuple[str, str, int]]:
    """Return `(session_id, role, ts)` of every message stored in `[start_ms, end_ms]`."""
    rows = conn.execute(
        "SELECT session_id, role, ts FROM messages WHERE ts >= ? AND ts <= ? ORDER BY ts",
        (start_ms, end_ms),
    ).fetchall()
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


def reset_session(
    conn: sqlite3.Connection, key: str, old_session_id: str, new_session_id: str, now: int
) -> None:
    """Give the session a new id and an empty transcript."""
    conn.execute("DELETE FROM messages WHERE session_id = ?", (old_session_id,))
    conn.execute(
        "UPDATE sessions SET session_id = ?, message_count = 0, updated_at = ? WHERE key = ?",
        (new_session_id, now, key),
    )


def delete_session(conn: sqlite3.Connection, key: str, session_id: str) -> None:
    """Remove the session and its transcript."""
    conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
    conn.execute("DELETE FROM sessions WHERE key = ?", (key,))
