"""Persist channel state: inbound dedupe, cursors, pairing codes, approved senders, sends.

Functions run on the store's owner thread and speak rows, tuples and JSON text only; the
channel layer turns them into its own records. Nothing here ever holds a credential, and
outbound rows hold no message text.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DONE",
    "LATE_FAILURE_WINDOW",
    "OPEN",
    "OutboundRow",
    "PairingRow",
    "approve_sender",
    "claim_inbound",
    "delete_pairing",
    "finish_inbound",
    "forget_inbound_before",
    "load_approved",
    "load_open_inbound",
    "load_outbound",
    "load_pairing",
    "load_state",
    "mark_outbound_failed",
    "record_outbound",
    "save_pairing",
    "save_state",
]

#: An inbound message whose turn is not finished (its record is kept for recovery).
OPEN = "open"
#: An inbound message that was answered, refused or ignored (only its id is kept).
DONE = "done"


@dataclass(frozen=True, slots=True)
class PairingRow:
    """One row of `channel_pairing`."""

    channel: str
    code: str
    account: str
    sender_id: str
    sender_name: str
    chat_id: str
    created_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class OutboundRow:
    """One row of `channel_outbound` (`message_ids` is JSON text)."""

    channel: str
    account: str
    chat_id: str
    thread_id: str | None
    session_key: str | None
    run_id: str | None
    state: str
    message_ids: str
    attempts: int
    error: str | None
    created_at: int


def claim_inbound(
    conn: sqlite3.Connection,
    key: tuple[str, str, str],
    received_at: int,
    record: str | None,
    pairing: PairingRow | None = None,
    expired: Sequence[tuple[str, str]] = (),
) -> bool:
    """Record an inbound message id; return False when it was seen before (a duplicate).

    With `record` the message stays `open` until `finish_inbound`; without it, it is done.
    A pairing code issued for it is saved in the same transaction, only for a new message;
    the `expired` pairing codes (channel, code) are dropped in it either way.
    """
    delete_pairing(conn, expired)
    channel, account, message_id = key
    cursor = conn.execute(
        "INSERT OR IGNORE INTO channel_inbound"
        " (channel, account, message_id, received_at, state, record) VALUES (?, ?, ?, ?, ?, ?)",
        (channel, account, message_id, received_at, OPEN if record else DONE, record),
    )
    if cursor.rowcount == 0:
        return False
    if pairing is not None:
        save_pairing(conn, pairing)
    return True


def finish_inbound(conn: sqlite3.Connection, keys: Iterable[tuple[str, str, str]]) -> None:
    """Mark inbound messages done and drop their stored text."""
    conn.executemany(
        "UPDATE channel_inbound SET state = ?, record = NULL"
        " WHERE channel = ? AND account = ? AND message_id = ?",
        [(DONE, *key) for key in keys],
    )


def load_open_inbound(conn: sqlite3.Connection) -> list[str]:
    """Return the records of inbound messages whose turn never finished, oldest first."""
    rows = conn.execute(
        "SELECT record FROM channel_inbound WHERE state = ? ORDER BY received_at, rowid", (OPEN,)
    ).fetchall()
    return [row[0] for row in rows if row[0]]


def forget_inbound_before(conn: sqlite3.Connection, cutoff: int) -> int:
    """Drop finished dedupe records older than `cutoff`; return how many went."""
    cursor = conn.execute(
        "DELETE FROM channel_inbound WHERE state = ? AND received_at < ?", (DONE, cutoff)
    )
    return cursor.rowcount


def load_state(conn: sqlite3.Connection, channel: str, account: str, key: str) -> str | None:
    """Return one per-account value (cursor, logout flag), or None."""
    row = conn.execute(
        "SELECT value FROM channel_state WHERE channel = ? AND account = ? AND key = ?",
        (channel, account, key),
    ).fetchone()
    return None if row is None else str(row[0])


def save_state(
    conn: sqlite3.Connection, channel: str, account: str, key: str, value: str | None, now: int
) -> None:
    """Set (or with None, delete) one per-account value."""
    if value is None:
        conn.execute(
            "DELETE FROM channel_state WHERE channel = ? AND account = ? AND key = ?",
            (channel, account, key),
        )
        return
    conn.execute(
        "INSERT INTO channel_state (channel, account, key, value, updated_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel, account, key)"
        " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        (channel, account, key, value, now),
    )


def load_pairing(conn: sqlite3.Connection) -> list[PairingRow]:
    """Return every stored pairing code."""
    rows = conn.execute(
        "SELECT channel, code, account, sender_id, sender_name, chat_id, created_at, expires_at"
        " FROM channel_pairing ORDER BY created_at"
    ).fetchall()
    return [PairingRow(*row) for row in rows]


def save_pairing(conn: sqlite3.Connection, row: PairingRow) -> None:
    """Insert or replace one pairing code."""
    conn.execute(
        "INSERT OR REPLACE INTO channel_pairing"
        " (channel, code, account, sender_id, sender_name, chat_id, created_at, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row.channel,
            row.code,
            row.account,
            row.sender_id,
            row.sender_name,
            row.chat_id,
            row.created_at,
            row.expires_at,
        ),
    )


def delete_pairing(conn: sqlite3.Connection, codes: Iterable[tuple[str, str]]) -> None:
    """Drop pairing codes by (channel, code)."""
    conn.executemany("DELETE FROM channel_pairing WHERE channel = ? AND code = ?", list(codes))


def approve_sender(
    conn: sqlite3.Connection,
    channel: str,
    account: str,
    sender_id: str,
    now: int,
    codes: Sequence[tuple[str, str]] = (),
) -> None:
    """Allow a sender from now on and drop the codes that asked for it, in one transaction."""
    conn.execute(
        "INSERT OR IGNORE INTO channel_senders (channel, account, sender_id, approved_at)"
        " VALUES (?, ?, ?, ?)",
        (channel, account, sender_id, now),
    )
    delete_pairing(conn, codes)


def load_approved(conn: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """Return every approved (channel, account, sender_id)."""
    rows = conn.execute("SELECT channel, account, sender_id FROM channel_senders").fetchall()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def record_outbound(
    conn: sqlite3.Connection,
    row: OutboundRow,
    finished: Iterable[tuple[str, str, str]] = (),
) -> int:
    """Record one send's outcome (and finish the inbound messages it answered); return its id."""
    cursor = conn.execute(
        "INSERT INTO channel_outbound (channel, account, chat_id, thread_id, session_key,"
        " run_id, state, message_ids, attempts, error, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            row.channel,
            row.account,
            row.chat_id,
            row.thread_id,
            row.session_key,
            row.run_id,
            row.state,
            row.message_ids,
            row.attempts,
            row.error,
            row.created_at,
        ),
    )
    finish_inbound(conn, finished)
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def load_outbound(
    conn: sqlite3.Connection, session_key: str | None = None, limit: int = 100
) -> list[OutboundRow]:
    """Return the newest outbound records (of one session), newest first."""
    columns = (
        "channel, account, chat_id, thread_id, session_key, run_id, state, message_ids,"
        " attempts, error, created_at"
    )
    if session_key is None:
        rows = conn.execute(
            f"SELECT {columns} FROM channel_outbound ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {columns} FROM channel_outbound WHERE session_key = ?"
            " ORDER BY id DESC LIMIT ?",
            (session_key, limit),
        ).fetchall()
    return [OutboundRow(*row) for row in rows]


#: How many of an account's newest outbound records a late failure report is matched against.
LATE_FAILURE_WINDOW: Final = 1000


def mark_outbound_failed(
    conn: sqlite3.Connection, channel: str, account: str, message_id: str, error: str
) -> bool:
    """Mark the record holding platform `message_id` failed (a delivery report came late).

    Only the account's newest `LATE_FAILURE_WINDOW` records are searched; return whether one
    matched.
    """
    cursor = conn.execute(
        "UPDATE channel_outbound SET state = 'failed', error = ? WHERE id = ("
        " SELECT o.id FROM (SELECT id, message_ids FROM channel_outbound"
        "  WHERE channel = ? AND account = ? ORDER BY id DESC LIMIT ?) AS o,"
        " json_each(o.message_ids) AS m WHERE m.value = ? ORDER BY o.id DESC LIMIT 1)",
        (error, channel, account, LATE_FAILURE_WINDOW, message_id),
    )
    return cursor.rowcount > 0
