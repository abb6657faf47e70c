"""Low-level SQLite file handling shared by the owner thread and ``inspect_store``.

Nothing here keeps state: each function takes a path or a connection and is called on whichever
thread owns that connection.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Final
from urllib.parse import quote

from ._errors import StoreError

__all__ = [
    "BUSY_TIMEOUT_S",
    "FILE_MODE",
    "check_integrity",
    "configure",
    "connect",
    "ensure_private_file",
    "has_table",
    "immediate_transaction",
    "inspect_file",
    "loose_mode",
    "move_aside",
    "restrict_sidecars",
    "sidecars",
    "user_version",
]

logger = logging.getLogger(__name__)

#: How long a statement waits for a lock held by another connection before failing.
BUSY_TIMEOUT_S: Final = 5.0
#: state.db and its -wal/-shm files are private to the daemon's user (spec §1.1).
FILE_MODE: Final = 0o600
SIDECAR_SUFFIXES: Final = ("-wal", "-shm")
#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER: Final = b"SQLite format 3\x00"
_CORRUPTION_CODES: Final = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})
# quick_check can list many pages; a log line names the first few.
_MAX_PROBLEMS_SHOWN: Final = 3


def sidecars(path: Path) -> tuple[Path, Path]:
    """Return the -wal and -shm paths SQLite uses beside ``path``."""
    wal, shm = (path.with_name(path.name + suffix) for suffix in SIDECAR_SUFFIXES)
    return wal, shm


def loose_mode(mode: int) -> bool:
    """Return True when a file mode grants any group or other permission."""
    return bool(stat.S_IMODE(mode) & 0o077)


def ensure_private_file(path: Path) -> bool:
    """Create ``path`` with mode 0600 unless it exists; return True if a loose mode was reset.

    Creating the file ourselves means SQLite never creates it with the umask's mode, and it
    creates the -wal and -shm files with the database file's mode.

    Raises:
        StoreError: the path cannot be opened or is not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StoreError(f"{path} is not a regular file")
        if loose_mode(info.st_mode):
            os.fchmod(fd, FILE_MODE)
            return True
        return False
    finally:
        os.close(fd)


def restrict_sidecars(path: Path) -> None:
    """Reset the -wal and -shm files to 0600 if they exist with a looser mode."""
    for sidecar in sidecars(path):
        try:
            if loose_mode(sidecar.stat().st_mode):
                os.chmod(sidecar, FILE_MODE)
        except FileNotFoundError:
            continue


def connect(path: Path, *, read_only: bool = False, immutable: bool = False) -> sqlite3.Connection:
    """Open an existing database file in autocommit mode (transactions are explicit).

    ``read_only`` opens with ``mode=ro``; ``immutable`` also tells SQLite that nobody else
    writes the file, so it creates no -wal/-shm files and takes no locks.
    """
    params = "mode=ro" if read_only else "mode=rw"
    if immutable:
        params += "&immutable=1"
    uri = f"file:{quote(str(path), safe='/')}?{params}"
    # isolation_level=None: the sqlite3 module never opens transactions on its own, so
    # every transaction is the BEGIN IMMEDIATE written in immediate_transaction().
    return sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)


def is_corruption(exc: sqlite3.Error) -> bool:
    """Return True when ``exc`` means the file is damaged or not a database at all."""
    code = getattr(exc, "sqlite_errorcode", None)
    # Extended result codes (e.g. SQLITE_CORRUPT_INDEX) keep the primary code in the low byte.
    return isinstance(code, int) and (code & 0xFF) in _CORRUPTION_CODES


def check_integrity(conn: sqlite3.Connection) -> str | None:
    """Run ``PRAGMA quick_check``; return None when it passes, else what is wrong.

    Raises:
        sqlite3.Error: the check could not run for a reason other than damage (e.g. a lock).
    """
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        if is_corruption(exc):
            return str(exc)
        raise
    problems = [str(row[0]) for row in rows]
    if problems == ["ok"]:
        return None
    shown = "; ".join(problems[:_MAX_PROBLEMS_SHOWN])
    more = len(problems) - _MAX_PROBLEMS_SHOWN
    return f"{shown} (and {more} more)" if more > 0 else shown


def inspect_file(path: Path) -> tuple[str | None, int]:
    """Check a database file; return what is wrong with it (None if nothing) and its version.

    The check uses a read-only connection on purpose: a read-write connection deletes a -wal
    it cannot use when it closes, and the -wal of a damaged database must stay with it.
    Without a -wal no connection has the file open and nothing is left to replay, so it is
    opened immutable and SQLite creates no -wal/-shm files; with one, SQLite reads through it.

    Raises:
        OSError: the file cannot be read.
        sqlite3.Error: the check could not run for a reason other than damage (e.g. a lock).
    """
    with path.open("rb") as file:
        header = file.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        # Not even SQLite's magic string: do not let SQLite touch it or its sidecars at all.
        return "not an SQLite database: unrecognised header", 0
    immutable = not sidecars(path)[0].exists()
    with closing(connect(path, read_only=True, immutable=immutable)) as conn:
        problem = check_integrity(conn)
        try:
            version = user_version(conn)
        except sqlite3.DatabaseError:
            version = 0
    return problem, version


def configure(conn: sqlite3.Connection) -> None:
    """Set the connection's PRAGMAs: WAL, synchronous=FULL, foreign keys (spec §1.6).

    Raises:
        StoreError: SQLite would not switch the file to WAL mode.
    """
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(mode).lower() != "wal":
        raise StoreError(f"SQLite refused WAL mode (journal_mode is {mode})")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")


def user_version(conn: sqlite3.Connection) -> int:
    """Return the database's ``PRAGMA user_version`` (the schema version)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Return True when the schema has a table called ``name``."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


@contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """Run the block in ``BEGIN IMMEDIATE`` ... ``COMMIT``; roll back if it raises.

    IMMEDIATE takes the write lock up front, so a transaction never fails half-way with
    SQLITE_BUSY when it first writes.

    Raises:
        StoreError: the block committed or rolled back the transaction itself.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        if not conn.in_transaction:
            raise StoreError("a store call ended its own transaction; let the store end it")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                logger.exception("rollback failed")
        raise


def move_aside(path: Path, stamp: str) -> Path:
    """Rename ``path`` and its -wal/-shm files to ``<name>.corrupt-<stamp>``; return the new path.

    Nothing is deleted or overwritten: an existing target gets a numeric suffix. The moved
    files keep SQLite's sidecar naming (``<new>-wal``), so they can still be opened together.
    """
    base = path.with_name(f"{path.name}.corrupt-{stamp}")
    target = base
    attempt = 0
    while any(p.exists() for p in (target, *sidecars(target))):
        attempt += 1
        target = base.with_name(f"{base.name}.{attempt}")
    # Sidecars first: a -wal left beside a fresh database would be replayed into it.
    for old, new in zip(sidecars(path), sidecars(target), strict=True):
        if old.exists():
            os.rename(old, new)
    os.rename(path, target)
    return target
