"""hub.db: the hub's state in one SQLite file (WAL), for a single hub instance (spec §7.2).

It lives here because only ``clawgate.store`` touches SQLite. It reuses the state store's
generic parts: the owner thread that runs every call off the event loop in submission order,
the file/PRAGMA helpers and numbered migrations. Writes go through a ``WriteBatcher``: writes
made while a commit is in flight share the next transaction, so one fsync serves many
commands and acks, and writes commit in the order they were called.

``HubDatabase`` implements ``hub_rows.HubRepository`` with the schema steps of ``hub_schema``:
it reads and writes rows (``KeyRow``, ``DaemonRow``, ``DesiredRow``, ``CommandRow``) and JSON;
the hub turns them into its own records. The JSON it stores is the hub's to shape (daemon
``info``, command ``spec``), except the keys of acks and reports it reads (``commandId``,
``state``, ``result``, ``error``; ``revision``, ``converged``, ``superseded``), which are the
control link's wire fields. It takes no lock: the hub makes sure one process opens the file.

Exceptions: ``StoreError`` (the file cannot be opened or migrated), ``StoreClosedError`` (a
call while not open), ``StaleRevision`` (``put_desired`` with a stale ``if_revision``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson

from ._batch import WriteBatcher
from ._errors import StoreClosedError, StoreError
from ._migrations import run_migrations
from ._sqlite import configure, connect, ensure_private_file, restrict_sidecars
from ._thread import OwnerThread
from .hub_rows import (
    PENDING_STATE,
    REPORTS_KEPT,
    CommandRow,
    DaemonRow,
    DesiredRow,
    KeyRow,
    StaleRevision,
    SweepRow,
)
from .hub_schema import sqlite_migrations

__all__ = [
    "PENDING_STATE",
    "REPORTS_KEPT",
    "CommandRow",
    "DaemonRow",
    "DesiredRow",
    "HubDatabase",
    "KeyRow",
    "StaleRevision",
    "SweepRow",
]

T = TypeVar("T")

MIGRATIONS: Final = sqlite_migrations()


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _key(row: sqlite3.Row) -> KeyRow:
    return KeyRow(row["key_id"], row["label"], row["created_at"], row["revoked_at"])


def _command_from_row(row: sqlite3.Row, acks: list[dict[str, Any]]) -> CommandRow:
    return CommandRow(
        command_id=row["command_id"],
        daemon_id=row["daemon_id"],
        idempotency_key=row["idempotency_key"],
        spec=orjson.loads(row["spec"]),
        sealed=row["sealed"],
        state=row["state"],
        terminal=bool(row["terminal"]),
        result=orjson.loads(row["result"]) if row["result"] is not None else None,
        error=orjson.loads(row["error"]) if row["error"] is not None else None,
        acks=acks,
        updated_at=row["updated_at"],
    )


def _load_command(conn: sqlite3.Connection, command_id: str) -> CommandRow | None:
    row = conn.execute("SELECT * FROM commands WHERE command_id = ?", (command_id,)).fetchone()
    if row is None:
        return None
    acks = [
        orjson.loads(body)
        for (body,) in conn.execute(
            "SELECT body FROM command_acks WHERE command_id = ? ORDER BY id", (command_id,)
        )
    ]
    return _command_from_row(row, acks)


def _daemon_from_row(row: sqlite3.Row, report: dict[str, Any] | None) -> DaemonRow:
    converged = row["converged"]
    return DaemonRow(
        daemon_id=row["daemon_id"],
        info=orjson.loads(row["info"]),
        session_id=row["session_id"],
        connected=bool(row["connected"]) and bool(row["alive"]),
        instance_id=row["instance_id"],
        last_seen_at=row["last_seen_at"],
        desired_revision=int(row["revision"] or 0),
        last_applied_revision=int(row["last_applied_revision"]),
        converged=None if converged is None else bool(converged),
        last_report=report,
    )


# `alive`: the holding instance beat after the cut-off (a session without an instance is
# from before instances were recorded and counts as alive).
_DAEMON_SELECT: Final = """
SELECT d.*, s.revision, (d.instance_id IS NULL OR i.beat_s > ?) AS alive
FROM daemons d LEFT JOIN desired_states s USING (daemon_id)
LEFT JOIN hub_instances i ON i.instance_id = d.instance_id
"""


class HubDatabase:
    """``hub.db``: one owner thread, WAL, rows in and out."""

    def __init__(self, path: Path) -> None:
        """Prepare a database for ``path``; nothing touches the disk until ``open``."""
        self._path = path
        self._thread: OwnerThread | None = None
        self._writes: WriteBatcher | None = None
        # Touched only on the owner thread.
        self._conn: sqlite3.Connection | None = None

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def where(self) -> str:
        """The database file, for messages."""
        return str(self._path)

    async def open(self) -> None:
        """Start the owner thread, open and migrate the file; its directory must exist.

        Raises:
            StoreError: the file cannot be opened or migrated (nothing is left running).
        """
        self._thread = OwnerThread("clawgate-hub-store")
        self._thread.start()
        self._writes = WriteBatcher(self._thread.submit, self._connection)
        try:
            await self._thread.submit(self._open_on_thread)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Finish queued calls and close the connection; idempotent."""
        if self._writes is not None:
            await self._writes.flush()
            self._writes = None
        if self._thread is not None:
            await self._thread.stop(self._close_on_thread)
            self._thread = None

    def _open_on_thread(self) -> None:
        try:
            ensure_private_file(self._path)
            conn = connect(self._path)
            conn.row_factory = sqlite3.Row
            configure(conn)
            run_migrations(conn, MIGRATIONS, self._path)
            restrict_sidecars(self._path)
        except Exception as exc:
            raise StoreError(f"cannot open {self._path}: {exc}") from None
        self._conn = conn

    def _close_on_thread(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()

    def _connection(self) -> sqlite3.Connection:
        """Return the open connection; call on the owner thread only."""
        conn = self._conn
        if conn is None:
            raise StoreClosedError("the hub store is not open")
        return conn

    async def _call(self, fn: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        # No await before the call is handed over: callers rely on writes committing in the
        # order they were called (the hub's link records acks from concurrent tasks).
        if self._thread is None or self._writes is None:
            raise StoreClosedError("the hub store is not open")
        try:
            if write:
                return await self._writes.write(fn)
            return await self._thread.submit(lambda: fn(self._connection()))
        except sqlite3.Error as exc:
            # As PgHubDatabase does: a database error is a StoreError, whatever the backend.
            raise StoreError(f"{self._path}: {type(exc).__name__}: {exc}") from None

    async def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers."""
        await self._call(lambda conn: conn.execute("SELECT 1").fetchone())

    # Keys

    async def add_key(self, key_id: str, key_hash: str, label: str, now: str) -> KeyRow:
        """Store a new key by its hash."""

        def add(conn: sqlite3.Connection) -> KeyRow:
            conn.execute(
                "INSERT INTO api_keys (key_id, key_hash, label, created_at) VALUES (?, ?, ?, ?)",
                (key_id, key_hash, label, now),
            )
            return KeyRow(key_id, label, now)

        return await self._call(add, write=True)

    async def revoke_key(self, key_id: str, now: str) -> KeyRow | None:
        """Revoke a key; return it, or None when no such key exists."""

        def revoke(conn: sqlite3.Connection) -> KeyRow | None:
            conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (now, key_id),
            )
            row = conn.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
            return None if row is None else _key(row)

        return await self._call(revoke, write=True)

    async def list_keys(self) -> list[KeyRow]:
        """Return every key, newest first."""

        def keys(conn: sqlite3.Connection) -> list[KeyRow]:
            rows = conn.execute("SELECT * FROM api_keys ORDER BY created_at DESC, rowid DESC")
            return [_key(row) for row in rows]

        return await self._call(keys)

    async def find_key(self, key_hash: str) -> KeyRow | None:
        """Return the unrevoked key with this hash, if any."""

        def find(conn: sqlite3.Connection) -> KeyRow | None:
            row = conn.execute(
                "SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (key_hash,)
            ).fetchone()
            return None if row is None else _key(row)

        return await self._call(find)

    # Daemons and sessions

    async def revoked_keys(self, key_ids: list[str]) -> set[str]:
        """Return which of ``key_ids`` are revoked."""

        def revoked(conn: sqlite3.Connection) -> set[str]:
            return {
                key_id
                for key_id in key_ids
                if conn.execute(
                    "SELECT 1 FROM api_keys WHERE key_id = ? AND revoked_at IS NOT NULL",
                    (key_id,),
                ).fetchone()
            }

        return await self._call(revoked)

    async def beat(self, instance_id: str, now: str, now_s: float) -> None:
        """Record that ``instance_id`` is alive at ``now_s`` (epoch seconds)."""
        await self._call(
            lambda conn: conn.execute(
                """INSERT INTO hub_instances (instance_id, started_at, beat_at, beat_s)
                   VALUES (?, ?, ?, ?)
                   ON CONFLICT (instance_id) DO UPDATE SET beat_at = excluded.beat_at,
                       beat_s = excluded.beat_s""",
                (instance_id, now, now, now_s),
            ),
            write=True,
        )

    async def open_session(
        self,
        daemon_id: str,
        session_id: str,
        instance_id: str,
        info: dict[str, Any],
        last_applied_revision: int,
        now: str,
    ) -> None:
        """Record that ``session_id`` on ``instance_id`` now holds the daemon."""
        blob = _json(info)

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(
                """INSERT INTO daemons (daemon_id, info, session_id, instance_id, connected,
                       last_seen_at, last_applied_revision)
                   VALUES (?, ?, ?, ?, 1, ?, ?)
                   ON CONFLICT (daemon_id) DO UPDATE SET info = excluded.info,
                       session_id = excluded.session_id, instance_id = excluded.instance_id,
                       connected = 1, last_seen_at = excluded.last_seen_at,
                       last_applied_revision = excluded.last_applied_revision""",
                (daemon_id, blob, session_id, instance_id, now, last_applied_revision),
            )

        await self._call(upsert, write=True)

    async def close_session(self, daemon_id: str, session_id: str, now: str) -> None:
        """Mark the daemon offline if ``session_id`` still holds it."""
        await self._call(
            lambda conn: conn.execute(
                "UPDATE daemons SET connected = 0, last_seen_at = ?"
                " WHERE daemon_id = ? AND session_id = ?",
                (now, daemon_id, session_id),
            ),
            write=True,
        )

    async def touch(self, sessions: list[tuple[str, str]], now: str) -> None:
        """Set ``last_seen_at`` of each ``(daemon_id, session_id)`` still holding its daemon."""
        await self._call(
            lambda conn: conn.executemany(
                "UPDATE daemons SET last_seen_at = ? WHERE daemon_id = ? AND session_id = ?",
                [(now, daemon_id, session_id) for daemon_id, session_id in sessions],
            ),
            write=True,
        )

    async def list_daemons(self, alive_after: float) -> list[DaemonRow]:
        """Return every known daemon, without reports."""

        def daemons(conn: sqlite3.Connection) -> list[DaemonRow]:
            rows = conn.execute(_DAEMON_SELECT + " ORDER BY d.daemon_id", (alive_after,))
            return [_daemon_from_row(row, None) for row in rows]

        return await self._call(daemons)

    async def get_daemon(self, daemon_id: str, alive_after: float) -> DaemonRow | None:
        """Return one daemon with its last report."""

        def daemon(conn: sqlite3.Connection) -> DaemonRow | None:
            row = conn.execute(
                _DAEMON_SELECT + " WHERE daemon_id = ?", (alive_after, daemon_id)
            ).fetchone()
            if row is None:
                return None
            report = conn.execute(
                "SELECT body FROM reports WHERE daemon_id = ? ORDER BY id DESC LIMIT 1",
                (daemon_id,),
            ).fetchone()
            return _daemon_from_row(row, orjson.loads(report[0]) if report else None)

        return await self._call(daemon)

    # Desired state

    async def put_desired(
        self,
        daemon_id: str,
        integrations: list[dict[str, Any]],
        seal: Callable[[int], bytes | None],
        if_revision: int | None,
        now: str,
    ) -> DesiredRow:
        """Store the next revision (previous + 1) in one transaction.

        ``seal(revision)`` runs inside it and returns the blob to store with the revision.

        Raises:
            StaleRevision: ``if_revision`` is given and is not the current revision.
        """
        body = _json(integrations)

        def put(conn: sqlite3.Connection) -> DesiredRow:
            row = conn.execute(
                "SELECT revision FROM desired_states WHERE daemon_id = ?", (daemon_id,)
            ).fetchone()
            current = int(row[0]) if row else 0
            if if_revision is not None and if_revision != current:
                raise StaleRevision(current)
            revision = current + 1
            sealed = seal(revision)
            conn.execute(
                """INSERT INTO desired_states (daemon_id, revision, issued_at, integrations, sealed)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (daemon_id) DO UPDATE SET revision = excluded.revision,
                       issued_at = excluded.issued_at, integrations = excluded.integrations,
                       sealed = excluded.sealed""",
                (daemon_id, revision, now, body, sealed),
            )
            conn.execute("INSERT OR IGNORE INTO daemons (daemon_id) VALUES (?)", (daemon_id,))
            return DesiredRow(daemon_id, revision, now, integrations, sealed)

        return await self._call(put, write=True)

    async def get_desired(self, daemon_id: str) -> DesiredRow | None:
        """Return the daemon's current desired state, if one was ever written."""

        def get(conn: sqlite3.Connection) -> DesiredRow | None:
            row = conn.execute(
                "SELECT * FROM desired_states WHERE daemon_id = ?", (daemon_id,)
            ).fetchone()
            if row is None:
                return None
            return DesiredRow(
                daemon_id,
                int(row["revision"]),
                row["issued_at"],
                orjson.loads(row["integrations"]),
                row["sealed"],
            )

        return await self._call(get)

    # Commands

    async def add_command(
        self,
        *,
        command_id: str,
        daemon_id: str,
        idempotency_key: str | None,
        spec: dict[str, Any],
        sealed: bytes | None,
        expires_at: float,
        issued_at: str,
    ) -> tuple[CommandRow, bool]:
        """Store a ``pending`` command; with a known idempotency key return that one and False.

        Args:
            command_id: The new command's id.
            daemon_id: The daemon it is for.
            idempotency_key: The operator's key, unique per daemon, or None.
            spec: Its JSON (never a secret value).
            sealed: The opaque blob of its secret values, or None.
            expires_at: Its expiry in epoch seconds, for ``unsettled_commands``.
            issued_at: Its RFC 3339 issue time, its first ``updated_at``.
        """
        body = _json(spec)

        def add(conn: sqlite3.Connection) -> tuple[CommandRow, bool]:
            if idempotency_key is not None:
                row = conn.execute(
                    "SELECT command_id FROM commands WHERE daemon_id = ? AND idempotency_key = ?",
                    (daemon_id, idempotency_key),
                ).fetchone()
                if row is not None:
                    existing = _load_command(conn, row[0])
                    assert existing is not None
                    return existing, False
            (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM commands").fetchone()
            conn.execute(
                """INSERT INTO commands (command_id, seq, daemon_id, idempotency_key, spec,
                       sealed, expires_at, state, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    command_id,
                    seq,
                    daemon_id,
                    idempotency_key,
                    body,
                    sealed,
                    expires_at,
                    PENDING_STATE,
                    issued_at,
                ),
            )
            conn.execute("INSERT OR IGNORE INTO daemons (daemon_id) VALUES (?)", (daemon_id,))
            created = CommandRow(
                command_id, daemon_id, idempotency_key, spec, sealed, updated_at=issued_at
            )
            return created, True

        return await self._call(add, write=True)

    async def get_command(self, command_id: str) -> CommandRow | None:
        """Return a command with its ack history."""
        return await self._call(lambda conn: _load_command(conn, command_id))

    async def unsettled_commands(self, daemon_id: str, expiring_after: float) -> list[CommandRow]:
        """Return the daemon's commands without a terminal ack expiring after the given time.

        Args:
            daemon_id: The daemon.
            expiring_after: Epoch seconds; commands that expire at or before it are left out.

        Returns:
            The commands in the order they were issued, without their acks.
        """

        def unsettled(conn: sqlite3.Connection) -> list[CommandRow]:
            rows = conn.execute(
                "SELECT * FROM commands WHERE daemon_id = ? AND terminal = 0 AND expires_at > ?"
                " ORDER BY seq",
                (daemon_id, expiring_after),
            ).fetchall()
            return [_command_from_row(row, []) for row in rows]

        return await self._call(unsettled)

    async def list_commands(self, daemon_id: str, limit: int) -> list[CommandRow]:
        """Return the daemon's latest ``limit`` commands, newest first, without their acks."""

        def latest(conn: sqlite3.Connection) -> list[CommandRow]:
            rows = conn.execute(
                "SELECT * FROM commands WHERE daemon_id = ? ORDER BY seq DESC LIMIT ?",
                (daemon_id, limit),
            ).fetchall()
            return [_command_from_row(row, []) for row in rows]

        return await self._call(latest)

    async def sweep(self, daemon_ids: list[str], expiring_after: float) -> list[SweepRow]:
        """Return, for each known daemon of ``daemon_ids``, its owner, revision and open ids."""

        def sweep(conn: sqlite3.Connection) -> list[SweepRow]:
            out = []
            for daemon_id in daemon_ids:
                row = conn.execute(
                    "SELECT d.session_id, s.revision FROM daemons d"
                    " LEFT JOIN desired_states s USING (daemon_id) WHERE daemon_id = ?",
                    (daemon_id,),
                ).fetchone()
                if row is None:
                    continue
                open_ids = conn.execute(
                    "SELECT command_id FROM commands"
                    " WHERE daemon_id = ? AND terminal = 0 AND expires_at > ? ORDER BY seq",
                    (daemon_id, expiring_after),
                ).fetchall()
                out.append(SweepRow(daemon_id, row[0], int(row[1] or 0), [r[0] for r in open_ids]))
            return out

        return await self._call(sweep)

    async def record_ack(
        self, daemon_id: str, ack: dict[str, Any], *, terminal: bool, now: str
    ) -> tuple[CommandRow, bool] | None:
        """Apply a COMMAND_ACK unless the command already has a terminal one.

        Args:
            daemon_id: The daemon that sent it.
            ack: The COMMAND_ACK payload; stored with ``receivedAt`` added.
            terminal: Whether ``ack["state"]`` is a terminal state.
            now: The time it was received.

        Returns:
            The command after the ack and whether the ack changed it; None when the daemon
            has no such command.
        """
        command_id = ack["commandId"]
        state = ack["state"]

        def record(conn: sqlite3.Connection) -> tuple[CommandRow, bool] | None:
            row = conn.execute(
                "SELECT terminal FROM commands WHERE command_id = ? AND daemon_id = ?",
                (command_id, daemon_id),
            ).fetchone()
            if row is None:
                return None
            changed = not row["terminal"]
            if changed:
                conn.execute(
                    "INSERT INTO command_acks (command_id, body) VALUES (?, ?)",
                    (command_id, _json({**ack, "receivedAt": now})),
                )
                conn.execute(
                    """UPDATE commands SET state = ?, terminal = ?, updated_at = ?,
                           result = ?, error = ?,
                           sealed = CASE WHEN ? THEN NULL ELSE sealed END
                       WHERE command_id = ?""",
                    (
                        state,
                        int(terminal),
                        now,
                        _json(ack["result"]) if "result" in ack else None,
                        _json(ack["error"]) if ack.get("error") is not None else None,
                        int(terminal),
                        command_id,
                    ),
                )
            loaded = _load_command(conn, command_id)
            assert loaded is not None
            return loaded, changed

        return await self._call(record, write=True)

    # Reports

    async def add_report(self, daemon_id: str, report: dict[str, Any], now: str) -> None:
        """Store a report and update the daemon's applied revision and convergence."""

        def add(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO reports (daemon_id, received_at, body) VALUES (?, ?, ?)",
                (daemon_id, now, _json({**report, "receivedAt": now})),
            )
            conn.execute(
                "DELETE FROM reports WHERE daemon_id = ? AND id NOT IN"
                " (SELECT id FROM reports WHERE daemon_id = ? ORDER BY id DESC LIMIT ?)",
                (daemon_id, daemon_id, REPORTS_KEPT),
            )
            if not report.get("superseded"):
                conn.execute(
                    "UPDATE daemons SET last_applied_revision = ?, converged = ?,"
                    " last_seen_at = ? WHERE daemon_id = ?",
                    (report["revision"], int(bool(report["converged"])), now, daemon_id),
                )

        await self._call(add, write=True)

    async def list_reports(self, daemon_id: str, limit: int) -> list[dict[str, Any]]:
        """Return recent reports, newest first."""

        def reports(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT body FROM reports WHERE daemon_id = ? ORDER BY id DESC LIMIT ?",
                (daemon_id, limit),
            )
            return [orjson.loads(body) for (body,) in rows]

        return await self._call(reports)
