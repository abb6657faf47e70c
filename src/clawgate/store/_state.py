"""The state store: the one owner of ``state.db`` (control-plane spec §1.6)."""

from __future__ import annotations

import asyncio
import enum
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ..protocol.timefmt import format_time
from ._errors import StoreClosedError, StoreError, StoreTooNewError
from ._migrations import MIGRATIONS, Migration, latest_version, run_migrations
from ._sqlite import (
    configure,
    connect,
    ensure_private_file,
    has_table,
    immediate_transaction,
    inspect_file,
    move_aside,
    restrict_sidecars,
)
from ._thread import OwnerThread

__all__ = ["THREAD_NAME", "OpenReport", "StateStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Name of the owner thread (one per open store).
THREAD_NAME = "clawgate-store"


@dataclass(frozen=True, slots=True)
class OpenReport:
    """What ``StateStore.open`` found and did."""

    schema_version: int
    daemon_id: str
    #: Where a corrupt file was moved before a fresh one was created, else None.
    recovered_from: Path | None = None


class _Phase(enum.Enum):
    NEW = "new"
    OPENING = "opening"
    OPEN = "open"
    CLOSED = "closed"


async def _result(future: asyncio.Future[T]) -> T:
    return await future


def _utc_stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")


class StateStore:
    """The one owner of state.db: a dedicated thread with its own sqlite3 connection.

    Every call runs on the owner thread in submission order, so writes are serialised by
    construction and a read sees every write submitted before it. A store is opened once
    and closed once; open a new ``StateStore`` to reopen the file.

    ``read`` and ``write`` queue the call at once and return a coroutine to await. Cancelling a
    task that awaits ``read``/``write`` does not withdraw the call: it still
    runs, and a write still commits. Code that must know a write's outcome (a row committed
    before an acknowledgement is sent, spec §1.6) awaits it without a timeout around it.
    """

    def __init__(
        self,
        path: Path,
        *,
        migrations: Sequence[Migration] = MIGRATIONS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Prepare a store for ``path``; nothing touches the disk until ``open``.

        Raises:
            ValueError: ``migrations`` are not numbered 1..N in order.
        """
        self._path = path
        self._migrations = tuple(migrations)
        self._known_version = latest_version(self._migrations)
        self._clock = clock
        self._phase = _Phase.NEW
        self._thread: OwnerThread | None = None
        # Touched only on the owner thread (sqlite3's check_same_thread enforces it).
        self._conn: sqlite3.Connection | None = None
        self._report: OpenReport | None = None

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def daemon_id(self) -> str:
        """The daemon's stable identity (a UUIDv4 created on first open)."""
        return self._opened().daemon_id

    @property
    def schema_version(self) -> int:
        """The schema version after migrations."""
        return self._opened().schema_version

    async def open(self) -> OpenReport:
        """Start the owner thread, check the file's integrity and migrate it.

        A file that is not a database or fails ``PRAGMA quick_check`` is moved aside to
        ``state.db.corrupt-<UTC timestamp>`` (never deleted) and a fresh database is created;
        ``OpenReport.recovered_from`` names where it went. On any failure the thread is
        stopped and the connection closed before the error is raised.

        Raises:
            StoreTooNewError: the file's schema is newer than this code knows.
            StoreError: the file cannot be opened, or a migration failed.
        """
        if self._phase is not _Phase.NEW:
            raise StoreError("a StateStore can be opened only once; create a new one")
        self._phase = _Phase.OPENING
        self._thread = OwnerThread(THREAD_NAME)
        self._thread.start()
        try:
            report = await self._thread.submit(self._open_on_thread)
        except BaseException:
            await self.close()
            raise
        if self._phase is not _Phase.OPENING:
            raise StoreClosedError(f"{self._path} was closed while it was being opened")
        self._report = report
        self._phase = _Phase.OPEN
        return report

    async def close(self) -> None:
        """Finish queued calls, checkpoint the WAL, close the connection, join the thread.

        Idempotent, and safe after a failed or unfinished ``open``.
        """
        self._phase = _Phase.CLOSED
        if self._thread is not None:
            await self._thread.stop(self._close_on_thread)

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> Coroutine[Any, Any, T]:
        """Queue ``fn`` to run on the owner thread with the connection set to read-only.

        The call is queued when ``read`` is called, not when the coroutine first runs, so
        calls made without an ``await`` between them run in the order they were made, and a
        call made before ``close`` always runs.

        Returns:
            A coroutine for ``fn``'s result or exception (``sqlite3.OperationalError`` if it
            tries to write); it can be awaited or wrapped in a task.

        Raises:
            StoreClosedError: the store is not open.
        """
        return _result(self._submit(lambda: self._read_on_thread(fn)))

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> Coroutine[Any, Any, T]:
        """Queue ``fn`` to run in ``BEGIN IMMEDIATE`` ... ``COMMIT`` on the owner thread.

        The transaction is rolled back if ``fn`` raises; ``fn`` must not commit or roll back.
        Queued at call time, like ``read``.

        Returns:
            A coroutine for ``fn``'s result; its exception is ``fn``'s (raised after the
            rollback), or ``StoreError`` if ``fn`` ended the transaction itself.

        Raises:
            StoreClosedError: the store is not open.
        """
        return _result(self._submit(lambda: self._write_on_thread(fn)))

    def submit_write(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``fn`` like ``write`` and return the future of its result, for callbacks.

        A group commit chains its transactions with this: the call is queued now, behind any
        running one, and the future's callbacks run on the loop once it committed.

        Raises:
            StoreClosedError: the store is not open.
        """
        return self._submit(lambda: self._write_on_thread(fn))

    def _opened(self) -> OpenReport:
        if self._report is None:
            raise StoreClosedError(f"{self._path} has not been opened")
        return self._report

    def _submit(self, call: Callable[[], T]) -> asyncio.Future[T]:
        if self._phase is not _Phase.OPEN or self._thread is None:
            raise StoreClosedError(f"{self._path} is not open")
        return self._thread.submit(call)

    # Everything below runs on the owner thread.

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreClosedError(f"{self._path} is not open")
        return self._conn

    def _read_on_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()
        conn.execute("PRAGMA query_only = ON")
        try:
            result = fn(conn)
        finally:
            left_open = conn.in_transaction
            if left_open:
                conn.execute("ROLLBACK")
            conn.execute("PRAGMA query_only = OFF")
        if left_open:
            raise StoreError("a read left a transaction open; it was rolled back")
        return result

    def _write_on_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()
        with immediate_transaction(conn):
            return fn(conn)

    def _open_on_thread(self) -> OpenReport:
        path = self._path
        try:
            if ensure_private_file(path):
                logger.warning("reset permissions of %s to 0600", path)
            recovered_from: Path | None = None
            problem, found = inspect_file(path)
            if problem is None and found > self._known_version:
                # Refuse before a read-write connection has touched the file.
                raise StoreTooNewError(path, found, self._known_version)
            if problem is not None:
                recovered_from = move_aside(path, _utc_stamp(self._clock()))
                logger.warning(
                    "state database %s is corrupt (%s); moved it aside to %s and created a"
                    " fresh one",
                    path,
                    problem,
                    recovered_from,
                )
                ensure_private_file(path)
            self._conn = connect(path)
            configure(self._conn)
            version = run_migrations(self._conn, self._migrations, path)
            daemon_id = self._ensure_identity(self._conn)
            restrict_sidecars(path)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {path}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"cannot open {path}: {exc}") from exc
        logger.info("opened %s (schema version %d)", path, version)
        return OpenReport(version, daemon_id, recovered_from)

    def _ensure_identity(self, conn: sqlite3.Connection) -> str:
        if not has_table(conn, "meta"):
            raise StoreError(f"{self._path}: the migrations did not create the meta table")
        with immediate_transaction(conn):
            insert = "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)"
            conn.execute(insert, ("daemon_id", str(uuid.uuid4())))
            conn.execute(insert, ("created_at", format_time(self._clock())))
            (daemon_id,) = conn.execute("SELECT value FROM meta WHERE key = 'daemon_id'").fetchone()
        return str(daemon_id)

    def _close_on_thread(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # TRUNCATE leaves an empty -wal; closing the last connection then removes it.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            # The WAL is replayed on the next open, so nothing is lost; say so and go on.
            logger.warning("checkpoint of %s on close failed: %s", self._path, exc)
        finally:
            conn.close()
        logger.debug("closed %s", self._path)
