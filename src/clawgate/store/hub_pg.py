"""The hub's state in PostgreSQL, shared by several hub instances (spec §7.2).

``PgHubDatabase`` implements ``hub_rows.HubRepository`` with the schema steps of
``hub_schema`` (asyncpg; imported on ``open`` so a single SQLite hub never loads it).

Writes go through one writer connection per instance that commits them in call order, and every
write that arrives while a commit is in flight joins the next transaction: the same order and
group commit as ``hub_db``'s ``WriteBatcher``. A write whose SQL error breaks the shared
transaction makes the batch run again one write per transaction, so only that write fails.
Instance heartbeats bypass the queue (a backlog must not make daemons look offline). Reads use
a small pool. Between instances the rows themselves are the locks: a write that reads before it
decides (``put_desired``) first locks the row it decides on, and ``record_ack`` decides in the
UPDATE that locks the command's row, so two instances never both take revision N + 1 and a
command never records two terminal acks. The statements a command takes on its way (insert,
load, ack, load) are one round trip each.

A lost connection fails the writes of its batch with ``StoreError`` (the hub answers 503 or
closes the link, and the caller retries); the next write opens a new connection, so the hub
recovers by itself once PostgreSQL is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson

from ._errors import StoreClosedError, StoreError
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
from .hub_schema import HUB_STEPS

if TYPE_CHECKING:
    import asyncpg

__all__ = ["PgHubDatabase", "redact_url"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Conn = Any  # asyncpg.Connection (or a pool's proxy of one)

#: Taken while schema steps are applied, so instances starting together apply each once.
_MIGRATION_LOCK: Final = 0x636C6177  # "claw"
_READ_POOL: Final = 8
_CONNECT_TIMEOUT_S: Final = 5.0
#: A read waits this long for a pooled connection: under a registration storm reads queue
#: rather than fail (a failed read is a 503 and a daemon's reconnect later).
_ACQUIRE_TIMEOUT_S: Final = 30.0
#: Writes per transaction at most; a storm is cut into transactions of this size.
_BATCH_MAX: Final = 256


def redact_url(url: str) -> str:
    """Return ``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[2]}"))


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _key(row: Any) -> KeyRow:
    return KeyRow(row["key_id"], row["label"], row["created_at"], row["revoked_at"])


def _command(row: Any, acks: list[dict[str, Any]]) -> CommandRow:
    return CommandRow(
        command_id=row["command_id"],
        daemon_id=row["daemon_id"],
        idempotency_key=row["idempotency_key"],
        spec=orjson.loads(row["spec"]),
        sealed=row["sealed"],
        state=row["state"],
        terminal=row["terminal"],
        result=orjson.loads(row["result"]) if row["result"] is not None else None,
        error=orjson.loads(row["error"]) if row["error"] is not None else None,
        acks=acks,
        updated_at=row["updated_at"],
    )


#: A command with its ack bodies in one statement (one round trip, not two).
_COMMAND_SELECT: Final = """
SELECT c.*, ARRAY(SELECT a.body FROM command_acks a WHERE a.command_id = c.command_id
                  ORDER BY a.id) AS ack_bodies
FROM commands c WHERE c.command_id = $1
"""


async def _load_command(conn: Conn, command_id: str) -> CommandRow | None:
    row = await conn.fetchrow(_COMMAND_SELECT, command_id)
    if row is None:
        return None
    return _command(row, [orjson.loads(body) for body in row["ack_bodies"]])


def _daemon(row: Any, report: dict[str, Any] | None) -> DaemonRow:
    return DaemonRow(
        daemon_id=row["daemon_id"],
        info=orjson.loads(row["info"]),
        session_id=row["session_id"],
        connected=bool(row["connected"] and row["alive"]),
        last_seen_at=row["last_seen_at"],
        desired_revision=int(row["revision"] or 0),
        last_applied_revision=int(row["last_applied_revision"]),
        converged=row["converged"],
        last_report=report,
        instance_id=row["instance_id"],
    )


_DAEMON_SELECT: Final = """
SELECT d.*, s.revision, (d.instance_id IS NULL OR i.beat_s > $1) AS alive
FROM daemons d LEFT JOIN desired_states s USING (daemon_id)
LEFT JOIN hub_instances i ON i.instance_id = d.instance_id
"""


def _is_connection_error(exc: BaseException) -> bool:
    import asyncpg

    return isinstance(
        exc,
        OSError
        | asyncpg.InterfaceError
        | asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.AdminShutdownError,
    )


async def _keep_session(conn: Conn) -> None:
    """Return a read connection to the pool as it is.

    asyncpg's default reset costs a round trip per read (``RESET ALL``, ``UNLISTEN *``,
    ``CLOSE ALL``, advisory unlocks) to undo session state that reads never create; the pool
    still rolls back a transaction left open.
    """


class _Aborted(Exception):
    """A write's SQL error aborted the shared transaction."""


@dataclass(slots=True)
class _Pending:
    fn: Callable[[Conn], Awaitable[Any]]
    future: asyncio.Future[Any]
    savepoint: bool
    #: The write is one statement (reads after it decide nothing): alone in its batch it runs
    #: without BEGIN and COMMIT, two round trips fewer; PostgreSQL commits it by itself.
    single: bool


class _Writer:
    """One connection that commits writes in call order, many per transaction."""

    def __init__(self, connect: Callable[[], Awaitable[Conn]], where: str) -> None:
        self._connect = connect
        self._where = where
        self._queue: list[_Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._conn: Conn | None = None

    async def write(
        self, fn: Callable[[Conn], Awaitable[T]], *, savepoint: bool = False, single: bool = False
    ) -> T:
        # Queued before any await: writes commit in the order they were called.
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(fn, future, savepoint, single))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="hub-pg-writer")
        return await future

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            if not conn.is_closed():
                conn.terminate()

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:_BATCH_MAX], self._queue[_BATCH_MAX:]
            await self._commit(batch)

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            outcomes = await self._run(batch)
        except _Aborted:
            # A write broke the shared transaction (an SQL error): run each one alone, so
            # only that write fails.
            outcomes = []
            for pending in batch:
                try:
                    outcomes += await self._run([pending])
                except Exception as exc:
                    await self._fail([pending], exc)
                    outcomes.append((False, exc))
        except Exception as exc:
            await self._fail(batch, exc)
            return
        for pending, (ok, value) in zip(batch, outcomes, strict=True):
            future = pending.future
            if future.done():
                continue
            if ok:
                future.set_result(value)
            elif isinstance(value, StaleRevision | StoreError):
                future.set_exception(value)
            else:
                future.set_exception(
                    StoreError(f"a write to {self._where} failed: {type(value).__name__}: {value}")
                )

    async def _run(self, batch: list[_Pending]) -> list[tuple[bool, Any]]:
        """Run ``batch`` in one transaction; raise ``_Aborted`` if an SQL error broke it.

        Most writes run bare (a savepoint costs two round trips); one that may raise after it
        wrote (``put_desired``'s ``StaleRevision``) asks for a savepoint. A ``single`` write
        alone in its batch runs as its own statement, without a transaction around it.
        """
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        conn = self._conn
        if len(batch) == 1 and batch[0].single:
            try:
                return [(True, await batch[0].fn(conn))]
            except Exception as exc:
                if _is_connection_error(exc):
                    raise
                return [(False, exc)]  # nothing was written; the connection is usable
        outcomes: list[tuple[bool, Any]] = []
        async with conn.transaction():
            for pending in batch:
                try:
                    if pending.savepoint:
                        async with conn.transaction():
                            outcomes.append((True, await pending.fn(conn)))
                    else:
                        outcomes.append((True, await pending.fn(conn)))
                except Exception as exc:
                    if _is_connection_error(exc):
                        raise
                    if pending.savepoint or isinstance(exc, StaleRevision):
                        outcomes.append((False, exc))  # the transaction is still usable
                        continue
                    raise _Aborted from exc
        return outcomes

    async def _fail(self, batch: list[_Pending], exc: BaseException) -> None:
        # Nothing of this batch is known to be committed: its writes fail, and the
        # connection is replaced by the next batch.
        if _is_connection_error(exc) or not isinstance(exc, _Aborted):
            await self._drop()
        cause = exc.__cause__ if isinstance(exc, _Aborted) and exc.__cause__ else exc
        error = StoreError(f"cannot write to {self._where}: {type(cause).__name__}: {cause}")
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(error)


class PgHubDatabase:
    """The hub's rows in PostgreSQL: one writer connection, a read pool."""

    def __init__(self, url: str, *, read_pool: int = _READ_POOL) -> None:
        """Prepare a database at ``url``; nothing connects until ``open``."""
        self._url = url
        self._read_pool = read_pool
        self._pool: asyncpg.Pool | None = None
        self._writer: _Writer | None = None

    @property
    def where(self) -> str:
        """The URL without its password."""
        return redact_url(self._url)

    async def _connect(self) -> Conn:
        import asyncpg

        return await asyncpg.connect(self._url, timeout=_CONNECT_TIMEOUT_S)

    async def open(self) -> None:
        """Connect, apply the schema steps not yet applied, open the read pool.

        Raises:
            StoreError: PostgreSQL cannot be reached, or a step failed (nothing applied).
        """
        import asyncpg

        try:
            conn = await self._connect()
            try:
                await self._migrate(conn)
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(
                self._url,
                min_size=1,
                max_size=self._read_pool,
                timeout=_CONNECT_TIMEOUT_S,
                reset=_keep_session,
            )
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot open {self.where}: {type(exc).__name__}: {exc}") from None
        self._writer = _Writer(self._connect, self.where)

    async def _migrate(self, conn: Conn) -> int:
        known = len(HUB_STEPS)
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS hub_schema (version INTEGER PRIMARY KEY,"
                " description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM hub_schema"))
            if current > known:
                raise StoreError(
                    f"{self.where} is at hub schema {current}, newer than this clawgate's"
                    f" {known}; upgrade clawgate on this instance"
                )
            for step in HUB_STEPS[current:]:
                try:
                    await conn.execute(step.postgres)
                except Exception as exc:
                    raise StoreError(
                        f"{self.where}: schema step {step.version} ({step.description}) failed"
                        f" and was rolled back: {type(exc).__name__}: {exc}"
                    ) from exc
                await conn.execute(
                    "INSERT INTO hub_schema (version, description) VALUES ($1, $2)",
                    step.version,
                    step.description,
                )
                logger.info("applied hub schema step %d: %s", step.version, step.description)
        return known

    async def close(self) -> None:
        """Finish queued writes, close the writer and the pool; idempotent."""
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), 5)
            pool.terminate()

    async def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        if self._pool is None:
            raise StoreClosedError("the hub store is not open")
        try:
            async with self._pool.acquire(timeout=_ACQUIRE_TIMEOUT_S) as conn:
                return await fn(conn)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot read {self.where}: {type(exc).__name__}: {exc}") from None

    async def _write(
        self, fn: Callable[[Conn], Awaitable[T]], *, savepoint: bool = False, single: bool = False
    ) -> T:
        if self._writer is None:
            raise StoreClosedError("the hub store is not open")
        return await self._writer.write(fn, savepoint=savepoint, single=single)

    async def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers."""
        await self._read(lambda conn: conn.fetchval("SELECT 1"))

    # Keys

    async def add_key(self, key_id: str, key_hash: str, label: str, now: str) -> KeyRow:
        """Store a new key by its hash."""

        async def add(conn: Conn) -> KeyRow:
            await conn.execute(
                "INSERT INTO api_keys (key_id, key_hash, label, created_at)"
                " VALUES ($1, $2, $3, $4)",
                key_id,
                key_hash,
                label,
                now,
            )
            return KeyRow(key_id, label, now)

        return await self._write(add, single=True)

    async def revoke_key(self, key_id: str, now: str) -> KeyRow | None:
        """Revoke a key; return it, or None when no such key exists."""

        async def revoke(conn: Conn) -> KeyRow | None:
            await conn.execute(
                "UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
                now,
                key_id,
            )
            row = await conn.fetchrow("SELECT * FROM api_keys WHERE key_id = $1", key_id)
            return None if row is None else _key(row)

        return await self._write(revoke)

    async def list_keys(self) -> list[KeyRow]:
        """Return every key, newest first."""

        async def keys(conn: Conn) -> list[KeyRow]:
            rows = await conn.fetch("SELECT * FROM api_keys ORDER BY created_at DESC, seq DESC")
            return [_key(row) for row in rows]

        return await self._read(keys)

    async def find_key(self, key_hash: str) -> KeyRow | None:
        """Return the unrevoked key with this hash, if any."""

        async def find(conn: Conn) -> KeyRow | None:
            row = await conn.fetchrow(
                "SELECT * FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
            )
            return None if row is None else _key(row)

        return await self._read(find)

    # Instances, daemons and sessions

    async def revoked_keys(self, key_ids: list[str]) -> set[str]:
        """Return which of ``key_ids`` are revoked."""

        async def revoked(conn: Conn) -> set[str]:
            rows = await conn.fetch(
                "SELECT key_id FROM api_keys WHERE key_id = ANY($1::text[])"
                " AND revoked_at IS NOT NULL",
                key_ids,
            )
            return {r["key_id"] for r in rows}

        return await self._read(revoked)

    async def beat(self, instance_id: str, now: str, now_s: float) -> None:
        """Record that ``instance_id`` is alive at ``now_s`` (epoch seconds)."""

        async def beat(conn: Conn) -> None:
            await conn.execute(
                """INSERT INTO hub_instances (instance_id, started_at, beat_at, beat_s)
                   VALUES ($1, $2, $2, $3)
                   ON CONFLICT (instance_id) DO UPDATE SET beat_at = EXCLUDED.beat_at,
                       beat_s = EXCLUDED.beat_s""",
                instance_id,
                now,
                now_s,
            )

        await self._read(beat)  # a pooled connection commits it at once, ahead of the queue

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

        async def upsert(conn: Conn) -> None:
            await conn.execute(
                """INSERT INTO daemons (daemon_id, info, session_id, instance_id, connected,
                       last_seen_at, last_applied_revision)
                   VALUES ($1, $2, $3, $4, TRUE, $5, $6)
                   ON CONFLICT (daemon_id) DO UPDATE SET info = EXCLUDED.info,
                       session_id = EXCLUDED.session_id, instance_id = EXCLUDED.instance_id,
                       connected = TRUE, last_seen_at = EXCLUDED.last_seen_at,
                       last_applied_revision = EXCLUDED.last_applied_revision""",
                daemon_id,
                blob,
                session_id,
                instance_id,
                now,
                last_applied_revision,
            )

        await self._write(upsert, single=True)

    async def close_session(self, daemon_id: str, session_id: str, now: str) -> None:
        """Mark the daemon offline if ``session_id`` still holds it."""

        async def close(conn: Conn) -> None:
            await conn.execute(
                "UPDATE daemons SET connected = FALSE, last_seen_at = $1"
                " WHERE daemon_id = $2 AND session_id = $3",
                now,
                daemon_id,
                session_id,
            )

        await self._write(close, single=True)

    async def touch(self, sessions: list[tuple[str, str]], now: str) -> None:
        """Set ``last_seen_at`` of each ``(daemon_id, session_id)`` still holding its daemon."""

        async def touch(conn: Conn) -> None:
            await conn.execute(
                "UPDATE daemons d SET last_seen_at = $1"
                " FROM unnest($2::text[], $3::text[]) AS s(daemon_id, session_id)"
                " WHERE d.daemon_id = s.daemon_id AND d.session_id = s.session_id",
                now,
                [daemon_id for daemon_id, _ in sessions],
                [session_id for _, session_id in sessions],
            )

        await self._write(touch, single=True)

    async def list_daemons(self, alive_after: float) -> list[DaemonRow]:
        """Return every known daemon, without reports."""

        async def daemons(conn: Conn) -> list[DaemonRow]:
            rows = await conn.fetch(_DAEMON_SELECT + " ORDER BY d.daemon_id", alive_after)
            return [_daemon(row, None) for row in rows]

        return await self._read(daemons)

    async def get_daemon(self, daemon_id: str, alive_after: float) -> DaemonRow | None:
        """Return one daemon with its last report."""

        async def daemon(conn: Conn) -> DaemonRow | None:
            row = await conn.fetchrow(
                _DAEMON_SELECT + " WHERE d.daemon_id = $2", alive_after, daemon_id
            )
            if row is None:
                return None
            report = await conn.fetchval(
                "SELECT body FROM reports WHERE daemon_id = $1 ORDER BY id DESC LIMIT 1",
                daemon_id,
            )
            return _daemon(row, orjson.loads(report) if report else None)

        return await self._read(daemon)

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

        The daemon's row is locked first: another instance writing the same daemon waits,
        then reads the revision this one committed.

        Raises:
            StaleRevision: ``if_revision`` is given and is not the current revision.
        """
        body = _json(integrations)

        async def put(conn: Conn) -> DesiredRow:
            await conn.execute(
                "INSERT INTO daemons (daemon_id) VALUES ($1) ON CONFLICT (daemon_id)"
                " DO UPDATE SET daemon_id = EXCLUDED.daemon_id",
                daemon_id,
            )
            current = int(
                await conn.fetchval(
                    "SELECT COALESCE(MAX(revision), 0) FROM desired_states WHERE daemon_id = $1",
                    daemon_id,
                )
            )
            if if_revision is not None and if_revision != current:
                raise StaleRevision(current)
            revision = current + 1
            sealed = seal(revision)
            await conn.execute(
                """INSERT INTO desired_states (daemon_id, revision, issued_at, integrations,
                       sealed) VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (daemon_id) DO UPDATE SET revision = EXCLUDED.revision,
                       issued_at = EXCLUDED.issued_at, integrations = EXCLUDED.integrations,
                       sealed = EXCLUDED.sealed""",
                daemon_id,
                revision,
                now,
                body,
                sealed,
            )
            return DesiredRow(daemon_id, revision, now, integrations, sealed)

        return await self._write(put, savepoint=True)

    async def get_desired(self, daemon_id: str) -> DesiredRow | None:
        """Return the daemon's current desired state, if one was ever written."""

        async def get(conn: Conn) -> DesiredRow | None:
            row = await conn.fetchrow(
                "SELECT * FROM desired_states WHERE daemon_id = $1", daemon_id
            )
            if row is None:
                return None
            return DesiredRow(
                daemon_id,
                int(row["revision"]),
                row["issued_at"],
                orjson.loads(row["integrations"]),
                row["sealed"],
            )

        return await self._read(get)

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

        Two instances inserting the same key at once: the unique constraint lets one in and
        the other (``DO NOTHING``) returns the winner's command.
        """
        body = _json(spec)

        async def add(conn: Conn) -> tuple[CommandRow, bool]:
            # One statement: the daemon's row is made only when the command went in.
            inserted = await conn.fetchval(
                """WITH added AS (
                       INSERT INTO commands (command_id, daemon_id, idempotency_key, spec,
                           sealed, expires_at, state, updated_at)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                       ON CONFLICT (daemon_id, idempotency_key) DO NOTHING
                       RETURNING command_id, daemon_id),
                   known AS (
                       INSERT INTO daemons (daemon_id) SELECT daemon_id FROM added
                       ON CONFLICT DO NOTHING)
                   SELECT command_id FROM added""",
                command_id,
                daemon_id,
                idempotency_key,
                body,
                sealed,
                expires_at,
                PENDING_STATE,
                issued_at,
            )
            if inserted is None:
                existing_id = await conn.fetchval(
                    "SELECT command_id FROM commands WHERE daemon_id = $1 AND idempotency_key = $2",
                    daemon_id,
                    idempotency_key,
                )
                existing = await _load_command(conn, existing_id)
                assert existing is not None
                return existing, False
            created = CommandRow(
                command_id, daemon_id, idempotency_key, spec, sealed, updated_at=issued_at
            )
            return created, True

        return await self._write(add, single=True)

    async def get_command(self, command_id: str) -> CommandRow | None:
        """Return a command with its ack history."""
        return await self._read(lambda conn: _load_command(conn, command_id))

    async def unsettled_commands(self, daemon_id: str, expiring_after: float) -> list[CommandRow]:
        """Return the daemon's non-terminal commands expiring after the given time, in order."""

        async def unsettled(conn: Conn) -> list[CommandRow]:
            rows = await conn.fetch(
                "SELECT * FROM commands WHERE daemon_id = $1 AND NOT terminal"
                " AND expires_at > $2 ORDER BY seq",
                daemon_id,
                expiring_after,
            )
            return [_command(row, []) for row in rows]

        return await self._read(unsettled)

    async def list_commands(self, daemon_id: str, limit: int) -> list[CommandRow]:
        """Return the daemon's latest ``limit`` commands, newest first, without their acks."""

        async def latest(conn: Conn) -> list[CommandRow]:
            rows = await conn.fetch(
                "SELECT * FROM commands WHERE daemon_id = $1 ORDER BY seq DESC LIMIT $2",
                daemon_id,
                limit,
            )
            return [_command(row, []) for row in rows]

        return await self._read(latest)

    async def sweep(self, daemon_ids: list[str], expiring_after: float) -> list[SweepRow]:
        """Return, for each known daemon of ``daemon_ids``, its owner, revision and open ids."""

        async def sweep(conn: Conn) -> list[SweepRow]:
            rows = await conn.fetch(
                """SELECT d.daemon_id, d.session_id, COALESCE(s.revision, 0) AS revision,
                       ARRAY(SELECT c.command_id FROM commands c
                             WHERE c.daemon_id = d.daemon_id AND NOT c.terminal
                               AND c.expires_at > $2 ORDER BY c.seq) AS open_ids
                   FROM daemons d LEFT JOIN desired_states s USING (daemon_id)
                   WHERE d.daemon_id = ANY($1::text[])""",
                daemon_ids,
                expiring_after,
            )
            return [
                SweepRow(r["daemon_id"], r["session_id"], int(r["revision"]), list(r["open_ids"]))
                for r in rows
            ]

        return await self._read(sweep)

    async def record_ack(
        self, daemon_id: str, ack: dict[str, Any], *, terminal: bool, now: str
    ) -> tuple[CommandRow, bool] | None:
        """Apply a COMMAND_ACK unless the command already has a terminal one.

        One statement in the common case: the UPDATE takes the command's row lock and
        re-checks ``NOT terminal`` on the row as committed once the lock is its own, so of two
        instances recording acks of one command at once, the second sees the first one's
        terminal state and changes nothing. Only an ack that changed nothing reads again.
        """
        command_id = ack["commandId"]
        state = ack["state"]
        body = _json({**ack, "receivedAt": now})

        async def record(conn: Conn) -> tuple[CommandRow, bool] | None:
            row = await conn.fetchrow(
                """WITH applied AS (
                       UPDATE commands SET state = $1, terminal = $2, updated_at = $3,
                           result = $4, error = $5,
                           sealed = CASE WHEN $2 THEN NULL ELSE sealed END
                       WHERE command_id = $6 AND daemon_id = $7 AND NOT terminal
                       RETURNING *),
                   logged AS (
                       INSERT INTO command_acks (command_id, body)
                       SELECT command_id, $8 FROM applied)
                   SELECT applied.*, ARRAY(SELECT a.body FROM command_acks a
                                           WHERE a.command_id = applied.command_id
                                           ORDER BY a.id) AS ack_bodies
                   FROM applied""",
                state,
                terminal,
                now,
                _json(ack["result"]) if "result" in ack else None,
                _json(ack["error"]) if ack.get("error") is not None else None,
                command_id,
                daemon_id,
                body,
            )
            if row is not None:
                # The statement does not see the ack row it inserts: it is the newest. Nor,
                # if its UPDATE waited for another instance's ack of this command, that ack
                # (its snapshot is older): the history returned may lack it, the state and
                # ``changed`` never do, and they are all the caller reads.
                acks = [orjson.loads(b) for b in row["ack_bodies"]]
                return _command(row, [*acks, orjson.loads(body)]), True
            loaded = await _load_command(conn, command_id)
            if loaded is None or loaded.daemon_id != daemon_id:
                return None
            return loaded, False

        return await self._write(record, single=True)

    # Reports

    async def add_report(self, daemon_id: str, report: dict[str, Any], now: str) -> None:
        """Store a report and update the daemon's applied revision and convergence."""

        async def add(conn: Conn) -> None:
            await conn.execute(
                "INSERT INTO reports (daemon_id, received_at, body) VALUES ($1, $2, $3)",
                daemon_id,
                now,
                _json({**report, "receivedAt": now}),
            )
            await conn.execute(
                "DELETE FROM reports WHERE daemon_id = $1 AND id NOT IN"
                " (SELECT id FROM reports WHERE daemon_id = $1 ORDER BY id DESC LIMIT $2)",
                daemon_id,
                REPORTS_KEPT,
            )
            if not report.get("superseded"):
                await conn.execute(
                    "UPDATE daemons SET last_applied_revision = $1, converged = $2,"
                    " last_seen_at = $3 WHERE daemon_id = $4",
                    report["revision"],
                    bool(report["converged"]),
                    now,
                    daemon_id,
                )

        await self._write(add)

    async def list_reports(self, daemon_id: str, limit: int) -> list[dict[str, Any]]:
        """Return recent reports, newest first."""

        async def reports(conn: Conn) -> list[dict[str, Any]]:
            rows = await conn.fetch(
                "SELECT body FROM reports WHERE daemon_id = $1 ORDER BY id DESC LIMIT $2",
                daemon_id,
                limit,
            )
            return [orjson.loads(r["body"]) for r in rows]

        return await self._read(reports)
