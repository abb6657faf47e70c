"""Persist hub command records (functions run on the store's owner thread; spec §1.6, §4).

A record is stored as the JSON of ``Command.to_json``, which holds secret field names but
never secret values (§8).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from ..commands.model import Command

__all__ = ["delete_commands", "load_commands", "save_commands"]


def save_commands(conn: sqlite3.Connection, records: Iterable[Command]) -> None:
    """Insert or replace ``records`` (call inside ``StateStore.write``)."""
    conn.executemany(
        "INSERT INTO commands (command_id, target_key, state, position, record, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (command_id) DO UPDATE SET target_key = excluded.target_key,"
        " state = excluded.state, position = excluded.position, record = excluded.record,"
        " updated_at = excluded.updated_at",
        [
            (
                r.command_id,
                r.target_key,
                r.state.value,
                r.position,
                json.dumps(r.to_json(), separators=(",", ":")),
                r.updated_at,
            )
            for r in records
        ],
    )


def delete_commands(conn: sqlite3.Connection, command_ids: Iterable[str]) -> None:
    """Delete the records of ``command_ids`` (call inside ``StateStore.write``)."""
    conn.executemany("DELETE FROM commands WHERE command_id = ?", [(c,) for c in command_ids])


def load_commands(conn: sqlite3.Connection) -> list[Command]:
    """Return every stored record in queue order (``position``, then ``commandId``)."""
    rows = conn.execute("SELECT record FROM commands ORDER BY position, command_id")
    return [Command.from_json(json.loads(row[0])) for row in rows]
