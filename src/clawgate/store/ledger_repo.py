"""The reconciliation ledger and its small records (desired snapshot, last report) in state.db.

Functions here run on the store's owner thread, passed to `StateStore.read`/`write`. They read
and write ``LedgerRow``s and JSON; the cloud package turns rows into its own records. Nothing
written here holds a secret value: rows keep secret field names, the snapshot is the desired
state without ``secrets`` (spec §5.1, §5.2).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = [
    "LedgerRow",
    "delete_items",
    "get_record",
    "load_items",
    "save_items",
    "set_record",
]

RECONCILE_NAMESPACE: Final = "reconcile"

_COLUMNS: Final = (
    "id, installed_version, spec_hash, config_hash, secret_fields, enabled, active, status,"
    " owner, last_action, attempts, error, next_attempt_at, applied_revision, depends_on,"
    " updated_at"
)


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One row of ``integrations``, its JSON columns decoded; times are epoch milliseconds."""

    id: str
    installed_version: str | None
    spec_hash: str | None
    config_hash: str | None
    secret_fields: tuple[str, ...]
    enabled: bool
    active: bool
    status: str
    owner: str | None
    last_action: str | None
    attempts: int
    error: dict[str, Any] | None
    next_attempt_at: int | None
    applied_revision: int
    depends_on: tuple[str, ...]
    updated_at: int


def save_items(conn: sqlite3.Connection, rows: Iterable[LedgerRow]) -> None:
    """Insert or replace ledger rows."""
    conn.executemany(
        f"INSERT OR REPLACE INTO integrations ({_COLUMNS}) VALUES"
        " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [_encode(row) for row in rows],
    )


def delete_items(conn: sqlite3.Connection, item_ids: Iterable[str]) -> None:
    """Delete ledger rows (their removal has been reported)."""
    conn.executemany("DELETE FROM integrations WHERE id = ?", [(i,) for i in item_ids])


def load_items(conn: sqlite3.Connection) -> list[LedgerRow]:
    """Return every ledger row."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM integrations ORDER BY id").fetchall()
    return [_decode(row) for row in rows]


def get_record(conn: sqlite3.Connection, key: str) -> Any:
    """Return one JSON record of the reconciler (``desired``, ``report``...), or None."""
    row = conn.execute(
        "SELECT value FROM kv WHERE namespace = ? AND key = ?", (RECONCILE_NAMESPACE, key)
    ).fetchone()
    return None if row is None else orjson.loads(row[0])


def set_record(conn: sqlite3.Connection, key: str, value: Any) -> None:
    """Store one JSON record of the reconciler."""
    conn.execute(
        "INSERT INTO kv (namespace, key, value, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, "
        "updated_at = excluded.updated_at",
        (RECONCILE_NAMESPACE, key, orjson.dumps(value).decode(), time.time()),
    )


def _encode(row: LedgerRow) -> tuple[Any, ...]:
    return (
        row.id,
        row.installed_version,
        row.spec_hash,
        row.config_hash,
        orjson.dumps(list(row.secret_fields)).decode(),
        int(row.enabled),
        int(row.active),
        row.status,
        row.owner,
        row.last_action,
        row.attempts,
        None if row.error is None else orjson.dumps(row.error).decode(),
        row.next_attempt_at,
        row.applied_revision,
        orjson.dumps(list(row.depends_on)).decode(),
        row.updated_at,
    )


def _decode(row: tuple[Any, ...]) -> LedgerRow:
    (item_id, installed, spec, config, secret_fields, enabled, active, status, owner, action,
     attempts, error, next_at, revision, depends_on, updated) = row  # fmt: skip
    return LedgerRow(
        id=item_id,
        installed_version=installed,
        spec_hash=spec,
        config_hash=config,
        secret_fields=tuple(orjson.loads(secret_fields)),
        enabled=bool(enabled),
        active=bool(active),
        status=status,
        owner=owner,
        last_action=action,
        attempts=attempts,
        error=None if error is None else orjson.loads(error),
        next_attempt_at=next_at,
        applied_revision=revision,
        depends_on=tuple(orjson.loads(depends_on)),
        updated_at=updated,
    )
