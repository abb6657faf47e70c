"""The reconciliation ledger and its small records (desired snapshot, last report) in state.db.

Functions here run on the store's owner thread, passed to `StateStore.read`/`write`. Nothing
written here holds a secret value: items keep secret field names, the snapshot is the
desired state without ``secrets`` (spec §5.1, §5.2).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any, Final

import orjson

from ..cloud.errors import ReconcileError
from ..cloud.ledger import ItemStatus, LedgerItem

__all__ = [
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


def save_items(conn: sqlite3.Connection, items: Iterable[LedgerItem]) -> None:
    """Insert or replace ledger rows."""
    conn.executemany(
        f"INSERT OR REPLACE INTO integrations ({_COLUMNS}) VALUES"
        " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [_row(item) for item in items],
    )


def delete_items(conn: sqlite3.Connection, item_ids: Iterable[str]) -> None:
    """Delete ledger rows (their removal has been reported)."""
    conn.executemany("DELETE FROM integrations WHERE id = ?", [(i,) for i in item_ids])


def load_items(conn: sqlite3.Connection) -> list[LedgerItem]:
    """Return every ledger row."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM integrations ORDER BY id").fetchall()
    return [_item(row) for row in rows]


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


def _row(item: LedgerItem) -> tuple[Any, ...]:
    return (
        item.id,
        item.installed_version,
        item.spec_hash,
        item.config_hash,
        orjson.dumps(list(item.secret_fields)).decode(),
        int(item.enabled),
        int(item.active),
        item.status.value,
        item.owner,
        item.last_action,
        item.attempts,
        None if item.error is None else orjson.dumps(item.error.to_json()).decode(),
        item.next_attempt_at,
        item.applied_revision,
        orjson.dumps(list(item.depends_on)).decode(),
        item.updated_at,
    )


def _item(row: tuple[Any, ...]) -> LedgerItem:
    (item_id, installed, spec, config, secret_fields, enabled, active, status, owner, action,
     attempts, error, next_at, revision, depends_on, updated) = row  # fmt: skip
    return LedgerItem(
        id=item_id,
        status=ItemStatus(status),
        installed_version=installed,
        spec_hash=spec,
        config_hash=config,
        secret_fields=tuple(orjson.loads(secret_fields)),
        enabled=bool(enabled),
        active=bool(active),
        owner=owner,
        last_action=action,
        attempts=attempts,
        error=None if error is None else ReconcileError.from_json(orjson.loads(error)),
        next_attempt_at=next_at,
        applied_revision=revision,
        depends_on=tuple(orjson.loads(depends_on)),
        updated_at=updated,
    )
