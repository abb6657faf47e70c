"""Persist hub command records as JSON (functions run on the store's owner thread; spec §1.6, §4).

A row is a record's persisted JSON object, camelCase as ``Command.to_json`` writes it, plus
copies of the fields SQL orders by (``commandId``, ``targetKey``, ``state``, ``position``,
``updatedAt``). The JSON holds secret field names but never secret values (§8). Turning the
JSON into a record is the commands package's business, not this module's.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any, Protocol

import orjson

__all__ = ["CommandJson", "delete_commands", "load_commands", "save_commands"]


class CommandJson(Protocol):
    """A command record as the repository sees it: something that renders its JSON object."""

    def to_json(self) -> dict[str, Any]:
        """Return the persisted JSON object (camelCase keys, no secret values)."""
        ...


def save_commands(conn: sqlite3.Connection, records: Iterable[CommandJson]) -> None:
    """Insert or replace ``records`` (call inside ``StateStore.write``)."""
    conn.executemany(
        "INSERT INTO commands (command_id, target_key, state, position, record, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (command_id) DO UPDATE SET target_key = excluded.target_key,"
        " state = excluded.state, position = excluded.position, record = excluded.record,"
        " updated_at = excluded.updated_at",
        [_row(record.to_json()) for record in records],
    )


def delete_commands(conn: sqlite3.Connection, command_ids: Iterable[str]) -> None:
    """Delete the records of ``command_ids`` (call inside ``StateStore.write``)."""
    conn.executemany("DELETE FROM commands WHERE command_id = ?", [(c,) for c in command_ids])


def load_commands(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Return every stored record's JSON object in queue order (``position``, then id)."""
    rows = conn.execute("SELECT record FROM commands ORDER BY position, command_id")
    return [json.loads(row[0]) for row in rows]


def _row(data: dict[str, Any]) -> tuple[Any, ...]:
    return (
        data["commandId"],
        data["targetKey"],
        data["state"],
        data["position"],
        orjson.dumps(data).decode(),
        data["updatedAt"],
    )
