"""Numbered, forward-only schema migrations driven by ``PRAGMA user_version``.

Version N of the schema is what migrations 1..N produce. A new table or column is a new
migration appended to ``MIGRATIONS``; a released migration is never edited.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ._errors import StoreError, StoreTooNewError
from ._sqlite import has_table, immediate_transaction, user_version

__all__ = ["MIGRATIONS", "Migration", "latest_version", "run_migrations", "split_script"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``apply`` takes the schema from ``version - 1`` to ``version``.

    ``apply`` is either a function given the connection inside the migration's transaction
    (it must not commit) or an SQL script. Both run in one ``BEGIN IMMEDIATE`` transaction
    together with the ``user_version`` bump, so a failure leaves no trace.
    """

    version: int
    description: str
    apply: Callable[[sqlite3.Connection], None] | str


_V1_META_AND_KV: Final = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
-- A generic namespaced key/value table for small gateway records.
CREATE TABLE kv (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (namespace, key)
);
"""

_V2_SYSTEM_EVENTS: Final = """
-- System events accepted by `system-event`, kept until an agent turn consumes them.
CREATE TABLE system_events (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    ts   INTEGER NOT NULL
);
"""

_V3_PAIRING: Final = """
-- Paired devices; `record` is JSON with roles, scopes, pinned metadata and token hashes
-- (never token values).
CREATE TABLE paired_devices (
    device_id TEXT PRIMARY KEY NOT NULL,
    record    TEXT NOT NULL
);
-- Pairing requests waiting for an operator; they expire 5 minutes after `ts`.
CREATE TABLE pairing_requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    request    TEXT NOT NULL,
    ts         INTEGER NOT NULL
);
"""

_V4_COMMANDS: Final = """
-- One row per hub commandId (spec §1.6, §4); `record` is JSON with non-secret params and the
-- names of secret fields only (never secret values). `position` orders each target's FIFO.
CREATE TABLE commands (
    command_id TEXT PRIMARY KEY NOT NULL,
    target_key TEXT NOT NULL,
    state      TEXT NOT NULL,
    position   INTEGER NOT NULL,
    record     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX commands_state_position ON commands (state, position);
"""

_V5_INTEGRATIONS: Final = """
-- The reconciliation ledger (spec §5.2), one row per integration; never secret values, only
-- the names of secret fields. `error` is JSON {code, message, details?}.
CREATE TABLE integrations (
    id                TEXT PRIMARY KEY NOT NULL,
    installed_version TEXT,
    spec_hash         TEXT,
    config_hash       TEXT,
    secret_fields     TEXT NOT NULL DEFAULT '[]',
    enabled           INTEGER NOT NULL DEFAULT 1,
    active            INTEGER NOT NULL DEFAULT 0,
    status            TEXT NOT NULL,
    owner             TEXT,
    last_action       TEXT,
    attempts          INTEGER NOT NULL DEFAULT 0,
    error             TEXT,
    next_attempt_at   INTEGER,
    applied_revision  INTEGER NOT NULL DEFAULT 0,
    depends_on        TEXT NOT NULL DEFAULT '[]',
    updated_at        INTEGER NOT NULL
);
"""

_V6_SESSIONS: Final = """
-- Chat sessions (gateway spec §10.4); `session_id` changes on reset.
CREATE TABLE sessions (
    key           TEXT PRIMARY KEY NOT NULL,
    session_id    TEXT NOT NULL UNIQUE,
    agent_id      TEXT NOT NULL,
    label         TEXT,
    model         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    message_count INTEGER NOT NULL DEFAULT 0
);
-- Transcripts, oldest first by `seq`; `seq` is also the `chat.history` paging cursor.
CREATE TABLE messages (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    session_id TEXT NOT NULL,
    role       TEXT NOT NULL,
    text       TEXT NOT NULL,
    label      TEXT,
    run_id     TEXT,
    ts         INTEGER NOT NULL
);
CREATE INDEX messages_by_session ON messages (session_id, seq);
"""

_V7_CHANNELS: Final = """
-- Inbound messages by platform id: the dedupe record (a redelivered update is not answered
-- twice). `record` holds the normalized message while its turn is unfinished, so a turn
-- interrupted by a crash is run again at start; it is cleared once the turn is done.
CREATE TABLE channel_inbound (
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    state       TEXT NOT NULL,
    record      TEXT,
    PRIMARY KEY (channel, account, message_id)
);
CREATE INDEX channel_inbound_open ON channel_inbound (state) WHERE state = 'open';
CREATE INDEX channel_inbound_age ON channel_inbound (received_at);
-- Per-account values a channel keeps: its cursor (update offset, sync token), logout.
CREATE TABLE channel_state (
    channel    TEXT NOT NULL,
    account    TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (channel, account, key)
);
-- DM pairing codes waiting for an operator (1 h, at most 3 per account).
CREATE TABLE channel_pairing (
    channel     TEXT NOT NULL,
    code        TEXT NOT NULL,
    account     TEXT NOT NULL,
    sender_id   TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    chat_id     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (channel, code)
);
-- Senders approved through pairing (on top of config's allow_from).
CREATE TABLE channel_senders (
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    sender_id   TEXT NOT NULL,
    approved_at INTEGER NOT NULL,
    PRIMARY KEY (channel, account, sender_id)
);
-- Every outbound send: its platform message ids, or why it failed (never the text).
CREATE TABLE channel_outbound (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    channel     TEXT NOT NULL,
    account     TEXT NOT NULL,
    chat_id     TEXT NOT NULL,
    thread_id   TEXT,
    session_key TEXT,
    run_id      TEXT,
    state       TEXT NOT NULL,
    message_ids TEXT NOT NULL DEFAULT '[]',
    attempts    INTEGER NOT NULL,
    error       TEXT,
    created_at  INTEGER NOT NULL
);
CREATE INDEX channel_outbound_by_session ON channel_outbound (session_key, id);
"""

_V8_CRON: Final = """
-- Cron jobs (gateway spec §10.8): `spec` is the job's wire fields as JSON, `state` its
-- scheduling state as JSON. A removed job keeps its row (`removed_at`) for a week, so
-- `cron.runs` still answers for it.
CREATE TABLE cron_jobs (
    job_id     TEXT PRIMARY KEY NOT NULL,
    spec       TEXT NOT NULL,
    state      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    removed_at INTEGER
);
-- One row per run, written when it starts (`running`) and again when it ends.
CREATE TABLE cron_runs (
    run_id       TEXT PRIMARY KEY NOT NULL,
    job_id       TEXT NOT NULL,
    status       TEXT NOT NULL,
    trigger      TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    scheduled_at INTEGER,
    late         INTEGER NOT NULL DEFAULT 0,
    finished_at  INTEGER,
    duration_ms  INTEGER,
    error        TEXT,
    summary      TEXT,
    session_key  TEXT,
    next_run_at  INTEGER
);
CREATE INDEX cron_runs_by_job ON cron_runs (job_id, started_at);
CREATE INDEX cron_runs_running ON cron_runs (status) WHERE status = 'running';
"""

_V9_NODES: Final = """
-- Nodes' approved command surfaces and names (gateway spec §10.5); `record` is JSON
-- {commands, approved_at_ms, display_name}.
CREATE TABLE node_surfaces (
    node_id TEXT PRIMARY KEY NOT NULL,
    record  TEXT NOT NULL
);
-- Command surfaces waiting for an operator; they expire 5 minutes after `ts`.
CREATE TABLE node_surface_requests (
    request_id TEXT PRIMARY KEY NOT NULL,
    node_id    TEXT NOT NULL,
    request    TEXT NOT NULL,
    ts         INTEGER NOT NULL
);
-- Exec approval policy per node (`*` = the default for nodes without their own); `record`
-- is JSON {mode, allowlist: [[glob, ...], ...], updated_at_ms}.
CREATE TABLE exec_policies (
    node_id TEXT PRIMARY KEY NOT NULL,
    record  TEXT NOT NULL
);
"""

_V10_APPROVAL_HISTORY: Final = """
-- Closed exec approvals for `approval.history`, newest kept (the repository trims the rest);
-- `record` is JSON {id, node_id, command, requested_by, outcome, resolver_kind, resolver_id,
-- resolved_by, created_at_ms, expires_at_ms, resolved_at_ms}.
CREATE TABLE exec_approval_history (
    approval_id    TEXT PRIMARY KEY NOT NULL,
    resolved_at_ms INTEGER NOT NULL,
    record         TEXT NOT NULL
);
CREATE INDEX exec_approval_history_newest
    ON exec_approval_history (resolved_at_ms DESC, approval_id DESC);
"""

_V11_OUTBOUND_BY_ACCOUNT: Final = """
-- A platform's late failure report (WhatsApp's `failed` status, BlueBubbles' send error)
-- looks up one account's newest deliveries; without this it read every account's.
CREATE INDEX channel_outbound_by_account ON channel_outbound (channel, account, id);
"""

#: Every migration this code knows, numbered from 1.
MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "meta and kv tables", _V1_META_AND_KV),
    Migration(2, "system events", _V2_SYSTEM_EVENTS),
    Migration(3, "paired devices and pairing requests", _V3_PAIRING),
    Migration(4, "commands", _V4_COMMANDS),
    Migration(5, "integrations ledger", _V5_INTEGRATIONS),
    Migration(6, "chat sessions and messages", _V6_SESSIONS),
    Migration(7, "channel inbound dedupe, state, pairing, senders, outbound", _V7_CHANNELS),
    Migration(8, "cron jobs and runs", _V8_CRON),
    Migration(9, "node surfaces and exec approval policies", _V9_NODES),
    Migration(10, "closed exec approvals", _V10_APPROVAL_HISTORY),
    Migration(11, "channel deliveries by account", _V11_OUTBOUND_BY_ACCOUNT),
)


def latest_version(migrations: Sequence[Migration]) -> int:
    """Return the schema version ``migrations`` reach.

    Raises:
        ValueError: the versions are not exactly 1, 2, ... N in order.
    """
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1..N in order, got {versions}")
    return len(versions)


def split_script(script: str) -> list[str]:
    """Split an SQL script into complete statements (semicolons in strings and triggers kept).

    ``executescript`` cannot be used: it commits the open transaction before running.
    """
    statements: list[str] = []
    pending = ""
    pieces = script.split(";")
    for index, piece in enumerate(pieces):
        pending += piece
        if index < len(pieces) - 1:
            pending += ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    if isinstance(migration.apply, str):
        for statement in split_script(migration.apply):
            conn.execute(statement)
    else:
        migration.apply(conn)
    conn.execute(f"PRAGMA user_version = {int(migration.version)}")
    # Spec §1.6 puts the schema version in the meta record; user_version stays authoritative
    # and both change in the same transaction.
    if has_table(conn, "meta"):
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(migration.version),),
        )


def run_migrations(conn: sqlite3.Connection, migrations: Sequence[Migration], path: Path) -> int:
    """Apply the migrations newer than the file's ``user_version``; return the new version.

    Raises:
        StoreTooNewError: the file's version is newer than the newest migration.
        StoreError: a migration failed; it was rolled back and later ones did not run.
    """
    known = latest_version(migrations)
    current = user_version(conn)
    if current > known:
        raise StoreTooNewError(path, current, known)
    for migration in migrations[current:]:
        try:
            with immediate_transaction(conn):
                _apply(conn, migration)
        except Exception as exc:
            raise StoreError(
                f"{path}: migration {migration.version} ({migration.description}) failed and was"
                f" rolled back: {type(exc).__name__}: {exc}"
            ) from exc
        # A fresh file runs every migration: that is creation, not news (debug); upgrading
        # an existing file is worth a line at info.
        logger.log(
            logging.DEBUG if current == 0 else logging.INFO,
            "migrated %s to schema version %d: %s",
            path,
            migration.version,
            migration.description,
        )
    return known
