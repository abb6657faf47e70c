"""``HubStore`` over either hub database: SQLite for one instance, PostgreSQL for many (§7.2).

The databases (``clawgate.store.hub_db.HubDatabase``, ``clawgate.store.hub_pg.PgHubDatabase``)
implement one ``HubRepository`` and read and write rows; ``RepositoryHubStore`` owns
everything the hub decides about them: the shapes of the daemon ``info``
and command ``spec`` JSON, which ack states are terminal, how long an unsettled command is
re-sent, and the lock. Store errors become hub errors here and nowhere else.

``SqliteHubStore`` adds the lock. The lock is ``<db>.lock`` (a ``PidLock``), taken before the
database is opened and released after it is closed: a second hub on the same file fails at once
with ``HubLocked`` instead of sharing a database whose wake-ups and in-memory secrets only one
process sees. It is the hub's rule, not the database's: SQLite itself would let both in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from ..files import AlreadyRunning, PidLock
from ..protocol.control_link import TERMINAL_STATES
from ..protocol.timefmt import format_time, parse_time
from ..store import StoreError
from ..store.hub_db import HubDatabase
from ..store.hub_rows import (
    CommandRow,
    DaemonRow,
    DesiredRow,
    HubRepository,
    KeyRow,
    StaleRevision,
    SweepRow,
)
from ..store.hub_schema import HUB_STEPS
from .settings import HubSettings
from .store import (
    AckOutcome,
    CommandRecord,
    DaemonRecord,
    DesiredRecord,
    HubLocked,
    HubStoreError,
    KeyRecord,
    NewCommand,
    RevisionConflict,
    SessionInfo,
    plugins_view,
)

__all__ = [
    "RESEND_GRACE_S",
    "RepositoryHubStore",
    "SqliteHubStore",
    "migrate_store",
    "postgres_store",
]

#: The hub re-sends a command until expiresAt plus this (spec §4.1).
RESEND_GRACE_S: Final = 24 * 3600
_TERMINAL_VALUES: Final = frozenset(state.value for state in TERMINAL_STATES)


@contextmanager
def _hub_errors() -> Iterator[None]:
    """Turn the database's errors into the ``HubStore`` ones."""
    try:
        yield
    except StaleRevision as exc:
        raise RevisionConflict(exc.current) from None
    except StoreError as exc:
        raise HubStoreError(str(exc)) from None


def _key(row: KeyRow) -> KeyRecord:
    return KeyRecord(row.key_id, row.label, row.created_at, row.revoked_at)


def _info(info: SessionInfo) -> dict[str, Any]:
    """Return what SERVICE_REGISTER said, as stored in ``daemons.info``."""
    return {
        "hostname": info.hostname,
        "platform": info.platform,
        "daemonVersion": info.daemon_version,
        "arch": info.arch,
        "plugins": info.plugins,
        "queueDepth": info.queue_depth,
        "keyId": info.key_id,
    }


def _daemon(row: DaemonRow) -> DaemonRecord:
    info = row.info
    return DaemonRecord(
        daemon_id=row.daemon_id,
        hostname=info.get("hostname"),
        platform=info.get("platform"),
        daemon_version=info.get("daemonVersion"),
        arch=info.get("arch"),
        connected=row.connected,
        session_id=row.session_id if row.connected else None,
        last_seen_at=row.last_seen_at,
        desired_revision=row.desired_revision,
        last_applied_revision=row.last_applied_revision,
        converged=row.converged,
        plugins=plugins_view(info.get("plugins", []), row.last_report, row.connected),
        queue_depth=int(info.get("queueDepth", 0)),
        last_report=row.last_report,
    )


def _desired(row: DesiredRow) -> DesiredRecord:
    return DesiredRecord(row.daemon_id, row.revision, row.issued_at, row.integrations, row.sealed)


def _spec(command: NewCommand) -> dict[str, Any]:
    """Return a command's non-secret fields, as stored in ``commands.spec``."""
    return {
        "name": command.name,
        "target": command.target,
        "params": command.params,
        "secretNames": command.secret_names,
        "issuedAt": command.issued_at,
        "expiresAt": command.expires_at,
        "timeoutMs": command.timeout_ms,
    }


def _command(row: CommandRow) -> CommandRecord:
    spec = row.spec
    command = NewCommand(
        command_id=row.command_id,
        daemon_id=row.daemon_id,
        name=spec["name"],
        target=spec["target"],
        params=spec["params"],
        secret_names=spec["secretNames"],
        idempotency_key=row.idempotency_key,
        issued_at=spec["issuedAt"],
        expires_at=spec["expiresAt"],
        timeout_ms=spec.get("timeoutMs"),
        sealed=row.sealed,
    )
    return CommandRecord(
        command=command,
        state=row.state,
        terminal=row.terminal,
        result=row.result,
        error=row.error,
        acks=row.acks,
        updated_at=row.updated_at,
    )


class RepositoryHubStore:
    """``HubStore`` on a ``HubRepository``.

    No method awaits anything before it calls the database, so writes commit in the order
    the methods were called (the daemon link relies on it for acks).
    """

    def __init__(self, db: HubRepository) -> None:
        """Use ``db``; nothing connects until ``open``."""
        self._db: HubRepository = db

    @property
    def where(self) -> str:
        """Where the state lives, for messages (never with a password)."""
        return self._db.where

    async def open(self) -> None:
        """Connect and apply the schema steps not yet applied.

        Raises:
            HubStoreError: the database cannot be reached or migrated.
        """
        with _hub_errors():
            await self._db.open()

    async def close(self) -> None:
        """Finish queued writes and disconnect; idempotent."""
        await self._db.close()

    async def ping(self) -> None:
        """Raise ``HubStoreError`` unless the database answers."""
        with _hub_errors():
            await self._db.ping()

    async def add_key(self, key_id: str, key_hash: str, label: str, now: str) -> KeyRecord:
        """Store a new key by its hash."""
        with _hub_errors():
            return _key(await self._db.add_key(key_id, key_hash, label, now))

    async def revoke_key(self, key_id: str, now: str) -> KeyRecord | None:
        """Revoke a key; return it, or None when no such key exists."""
        with _hub_errors():
            row = await self._db.revoke_key(key_id, now)
        return None if row is None else _key(row)

    async def list_keys(self) -> list[KeyRecord]:
        """Return every key, newest first."""
        with _hub_errors():
            return [_key(row) for row in await self._db.list_keys()]

    async def find_key(self, key_hash: str) -> KeyRecord | None:
        """Return the unrevoked key with this hash, if any."""
        with _hub_errors():
            row = await self._db.find_key(key_hash)
        return None if row is None else _key(row)

    # Daemons and sessions

    async def revoked_keys(self, key_ids: list[str]) -> set[str]:
        """Return which of ``key_ids`` are revoked."""
        with _hub_errors():
            return await self._db.revoked_keys(key_ids)

    async def beat(self, instance_id: str, now: float) -> None:
        """Record that ``instance_id`` is alive at ``now`` (epoch seconds)."""
        with _hub_errors():
            await self._db.beat(instance_id, format_time(now), now)

    async def open_session(self, info: SessionInfo, now: str) -> None:
        """Record that ``info.session_id`` on ``info.instance_id`` now holds the daemon."""
        with _hub_errors():
            await self._db.open_session(
                info.daemon_id,
                info.session_id,
                info.instance_id,
                _info(info),
                info.last_applied_revision,
                now,
            )

    async def close_session(self, daemon_id: str, session_id: str, now: str) -> None:
        """Mark the daemon offline if ``session_id`` still holds it."""
        with _hub_errors():
            await self._db.close_session(daemon_id, session_id, now)

    async def touch(self, sessions: list[tuple[str, str]], now: str) -> None:
        """Set ``lastSeenAt`` of each ``(daemonId, sessionId)`` still holding its daemon."""
        with _hub_errors():
            await self._db.touch(sessions, now)

    async def list_daemons(self, alive_after: float) -> list[DaemonRecord]:
        """Return every known daemon; instances silent since ``alive_after`` hold none."""
        with _hub_errors():
            return [_daemon(row) for row in await self._db.list_daemons(alive_after)]

    async def get_daemon(self, daemon_id: str, alive_after: float) -> DaemonRecord | None:
        """Return one daemon with its plugins and last report."""
        with _hub_errors():
            row = await self._db.get_daemon(daemon_id, alive_after)
        return None if row is None else _daemon(row)

    # Desired state

    async def put_desired(
        self,
        daemon_id: str,
        integrations: list[dict[str, Any]],
        seal: Callable[[int], bytes | None],
        if_revision: int | None,
        now: str,
    ) -> DesiredRecord:
        """Store the next revision (previous + 1) in one transaction.

        Raises:
            RevisionConflict: ``if_revision`` is given and is not the current revision.
        """
        with _hub_errors():
            row = await self._db.put_desired(daemon_id, integrations, seal, if_revision, now)
        return _desired(row)

    async def get_desired(self, daemon_id: str) -> DesiredRecord | None:
        """Return the daemon's current desired state, if one was ever written."""
        with _hub_errors():
            row = await self._db.get_desired(daemon_id)
        return None if row is None else _desired(row)

    # Commands

    async def add_command(self, command: NewCommand) -> tuple[CommandRecord, bool]:
        """Store a command; with a known idempotency key return the existing one and False."""
        with _hub_errors():
            row, created = await self._db.add_command(
                command_id=command.command_id,
                daemon_id=command.daemon_id,
                idempotency_key=command.idempotency_key,
                spec=_spec(command),
                sealed=command.sealed,
                expires_at=parse_time(command.expires_at),
                issued_at=command.issued_at,
            )
        return _command(row), created

    async def get_command(self, command_id: str) -> CommandRecord | None:
        """Return a command with its ack history."""
        with _hub_errors():
            row = await self._db.get_command(command_id)
        return None if row is None else _command(row)

    async def unsettled_commands(self, daemon_id: str, now: str) -> list[CommandRecord]:
        """Return the daemon's commands without a terminal ack still worth re-sending."""
        horizon = parse_time(now) - RESEND_GRACE_S
        with _hub_errors():
            return [_command(row) for row in await self._db.unsettled_commands(daemon_id, horizon)]

    async def list_commands(self, daemon_id: str, limit: int) -> list[CommandRecord]:
        """Return the daemon's latest ``limit`` commands, newest first (acks left out)."""
        with _hub_errors():
            return [_command(row) for row in await self._db.list_commands(daemon_id, limit)]

    async def sweep(self, daemon_ids: list[str], now: str) -> list[SweepRow]:
        """Return each held daemon's owning session, revision and unsettled command ids."""
        horizon = parse_time(now) - RESEND_GRACE_S
        with _hub_errors():
            return await self._db.sweep(daemon_ids, horizon)

    async def record_ack(self, daemon_id: str, ack: dict[str, Any], now: str) -> AckOutcome | None:
        """Apply a COMMAND_ACK; None when the daemon has no such command."""
        terminal = ack["state"] in _TERMINAL_VALUES
        with _hub_errors():
            applied = await self._db.record_ack(daemon_id, ack, terminal=terminal, now=now)
        if applied is None:
            return None
        row, changed = applied
        return AckOutcome(_command(row), changed)

    # Reports

    async def add_report(self, daemon_id: str, report: dict[str, Any], now: str) -> None:
        """Store a report and update the daemon's applied revision and convergence."""
        with _hub_errors():
            await self._db.add_report(daemon_id, report, now)

    async def list_reports(self, daemon_id: str, limit: int) -> list[dict[str, Any]]:
        """Return recent reports, newest first."""
        with _hub_errors():
            return await self._db.list_reports(daemon_id, limit)


class SqliteHubStore(RepositoryHubStore):
    """``HubStore`` on ``hub.db`` for one hub process, guarded by ``<db>.lock``."""

    def __init__(self, path: Path) -> None:
        """Prepare a store for ``path``; nothing touches the disk until ``open``."""
        self._file = HubDatabase(path)
        super().__init__(self._file)
        self._lock = PidLock(path.with_name(path.name + ".lock"))

    @property
    def path(self) -> Path:
        """The database file."""
        return self._file.path

    async def open(self) -> None:
        """Take the lock, then open and migrate the database.

        Raises:
            HubLocked: another hub holds the database.
            HubStoreError: the file cannot be locked, opened or migrated.
        """
        path = self._file.path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except AlreadyRunning as exc:
            pid = f" (pid {exc.pid})" if exc.pid else ""
            raise HubLocked(
                f"another hub{pid} already uses {path}; stop it or pass another --db"
            ) from None
        except OSError as exc:
            raise HubStoreError(f"cannot lock {path}: {exc.strerror}") from None
        try:
            await super().open()
        except BaseException:
            self._lock.release()
            raise

    async def close(self) -> None:
        """Finish queued calls, close the database, then release the lock; idempotent."""
        await super().close()
        self._lock.release()


def postgres_store(url: str) -> RepositoryHubStore:
    """Return a ``HubStore`` on PostgreSQL at ``url`` (asyncpg loads when it opens)."""
    from ..store.hub_pg import PgHubDatabase

    return RepositoryHubStore(PgHubDatabase(url))


async def migrate_store(settings: HubSettings) -> int:
    """Open the configured database (which applies its schema steps), close it, return the
    schema version now in force.

    Raises:
        HubLocked: a running single hub holds the SQLite file.
        HubStoreError: the database cannot be reached or a step failed.
    """
    store = (
        postgres_store(settings.database_url)
        if settings.database_url is not None
        else SqliteHubStore(settings.db_path)
    )
    await store.open()
    await store.close()
    return len(HUB_STEPS)
