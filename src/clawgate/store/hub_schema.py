"""The hub database's schema: one list of steps, each written for SQLite and PostgreSQL.

Step N takes either database from version N - 1 to N; a released step is never edited and a
new table or column is a new step appended to ``HUB_STEPS`` with both texts. SQLite records
its version in ``PRAGMA user_version`` (``_migrations.run_migrations``); PostgreSQL in the
``hub_schema`` table, under an advisory lock so that instances starting together apply each
step once (``hub_pg``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ._migrations import Migration

__all__ = ["HUB_STEPS", "HubStep", "sqlite_migrations"]


@dataclass(frozen=True, slots=True)
class HubStep:
    """One schema step in both dialects."""

    version: int
    description: str
    sqlite: str
    postgres: str


_V1_SQLITE: Final = """
CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
-- Daemon API keys by SHA-256 hash; the key itself is shown once and never stored.
CREATE TABLE api_keys (
    key_id     TEXT PRIMARY KEY NOT NULL,
    key_hash   TEXT NOT NULL UNIQUE,
    label      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
-- Every daemon that connected or has a desired state; `info` is JSON from SERVICE_REGISTER.
CREATE TABLE daemons (
    daemon_id             TEXT PRIMARY KEY NOT NULL,
    info                  TEXT NOT NULL DEFAULT '{}',
    session_id            TEXT,
    connected             INTEGER NOT NULL DEFAULT 0,
    last_seen_at          TEXT,
    last_applied_revision INTEGER NOT NULL DEFAULT 0,
    converged             INTEGER
);
-- The current desired state per daemon; `integrations` holds secret names only and
-- `sealed` the AEAD-sealed values (NULL when secrets live in hub memory).
CREATE TABLE desired_states (
    daemon_id    TEXT PRIMARY KEY NOT NULL,
    revision     INTEGER NOT NULL,
    issued_at    TEXT NOT NULL,
    integrations TEXT NOT NULL,
    sealed       BLOB
);
-- Commands; `spec` is JSON with non-secret fields and secret names; `sealed` as above,
-- cleared at the terminal state.
CREATE TABLE commands (
    command_id      TEXT PRIMARY KEY NOT NULL,
    seq             INTEGER NOT NULL,
    daemon_id       TEXT NOT NULL,
    idempotency_key TEXT,
    spec            TEXT NOT NULL,
    sealed          BLOB,
    expires_at      REAL NOT NULL,
    state           TEXT NOT NULL,
    terminal        INTEGER NOT NULL DEFAULT 0,
    result          TEXT,
    error           TEXT,
    updated_at      TEXT,
    UNIQUE (daemon_id, idempotency_key)
);
CREATE INDEX commands_unsettled ON commands (daemon_id, terminal, seq);
CREATE TABLE command_acks (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    command_id TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX command_acks_by_command ON command_acks (command_id, id);
CREATE TABLE reports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    daemon_id   TEXT NOT NULL,
    received_at TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX reports_by_daemon ON reports (daemon_id, id);
"""

# The same tables; identities replace AUTOINCREMENT and MAX(seq) + 1 (concurrent instances
# insert commands at once), and `api_keys.seq` stands in for SQLite's rowid in listings.
_V1_POSTGRES: Final = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE api_keys (
    key_id     TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE,
    label      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    seq        BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE TABLE daemons (
    daemon_id             TEXT PRIMARY KEY,
    info                  TEXT NOT NULL DEFAULT '{}',
    session_id            TEXT,
    connected             BOOLEAN NOT NULL DEFAULT FALSE,
    last_seen_at          TEXT,
    last_applied_revision BIGINT NOT NULL DEFAULT 0,
    converged             BOOLEAN
);
CREATE TABLE desired_states (
    daemon_id    TEXT PRIMARY KEY,
    revision     BIGINT NOT NULL,
    issued_at    TEXT NOT NULL,
    integrations TEXT NOT NULL,
    sealed       BYTEA
);
CREATE TABLE commands (
    command_id      TEXT PRIMARY KEY,
    seq             BIGINT GENERATED ALWAYS AS IDENTITY,
    daemon_id       TEXT NOT NULL,
    idempotency_key TEXT,
    spec            TEXT NOT NULL,
    sealed          BYTEA,
    expires_at      DOUBLE PRECISION NOT NULL,
    state           TEXT NOT NULL,
    terminal        BOOLEAN NOT NULL DEFAULT FALSE,
    result          TEXT,
    error           TEXT,
    updated_at      TEXT,
    UNIQUE (daemon_id, idempotency_key)
);
CREATE INDEX commands_unsettled ON commands (daemon_id, terminal, seq);
CREATE TABLE command_acks (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command_id TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX command_acks_by_command ON command_acks (command_id, id);
CREATE TABLE reports (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    daemon_id   TEXT NOT NULL,
    received_at TEXT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX reports_by_daemon ON reports (daemon_id, id);
"""

# MAX(seq) for the next command otherwise scans a whole index: O(commands ever issued).
# PostgreSQL takes seq from an identity; its step indexes what the 5 s sweep reads instead.
_V2_SQLITE: Final = "CREATE INDEX commands_by_seq ON commands (seq);"
_V2_POSTGRES: Final = "CREATE INDEX commands_open ON commands (daemon_id, seq) WHERE NOT terminal;"

# Session ownership names the instance (spec §7.2); an instance's heartbeat says whether the
# daemons it holds are still connected, so a killed instance's daemons turn offline.
_V3_SQLITE: Final = """
ALTER TABLE daemons ADD COLUMN instance_id TEXT;
CREATE TABLE hub_instances (
    instance_id TEXT PRIMARY KEY NOT NULL,
    started_at  TEXT NOT NULL,
    beat_at     TEXT NOT NULL,
    beat_s      REAL NOT NULL
);
"""
_V3_POSTGRES: Final = """
ALTER TABLE daemons ADD COLUMN instance_id TEXT;
CREATE INDEX daemons_by_instance ON daemons (instance_id);
CREATE TABLE hub_instances (
    instance_id TEXT PRIMARY KEY,
    started_at  TEXT NOT NULL,
    beat_at     TEXT NOT NULL,
    beat_s      DOUBLE PRECISION NOT NULL
);
"""

HUB_STEPS: Final = (
    HubStep(1, "keys, daemons, desired states, commands, reports", _V1_SQLITE, _V1_POSTGRES),
    HubStep(2, "index for issuing (SQLite) or sweeping (PostgreSQL)", _V2_SQLITE, _V2_POSTGRES),
    HubStep(3, "session owner instance and instance heartbeats", _V3_SQLITE, _V3_POSTGRES),
)


def sqlite_migrations() -> tuple[Migration, ...]:
    """Return the steps as SQLite migrations."""
    return tuple(Migration(s.version, s.description, s.sqlite) for s in HUB_STEPS)
