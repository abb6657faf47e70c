"""StateStore on real SQLite files: files, PRAGMAs, identity, reads, writes, migrations, close."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from clawgate.store import (
    MIGRATIONS,
    THREAD_NAME,
    Migration,
    StateStore,
    StoreClosedError,
    StoreError,
    StoreTooNewError,
)

# Tests that add migrations build on the first one only, whatever later ones exist.
BASE = MIGRATIONS[:1]


def store_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    """Every test must leave no owner thread running."""
    yield
    assert store_threads() == []


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[StateStore]:
    store = StateStore(db)
    await store.open()
    yield store
    await store.close()


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {row[0] for row in rows}


def put(namespace: str, key: str, value: str) -> Callable[[sqlite3.Connection], None]:
    def apply(conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO kv VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET value = excluded.value",
            (namespace, key, value, 0.0),
        )

    return apply


def get(namespace: str, key: str) -> Callable[[sqlite3.Connection], str | None]:
    def query(conn: sqlite3.Connection) -> str | None:
        row = conn.execute(
            "SELECT value FROM kv WHERE namespace = ? AND key = ?", (namespace, key)
        ).fetchone()
        return None if row is None else str(row[0])

    return query


def count_kv(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM kv").fetchone()[0])


# Files, modes and PRAGMAs


async def test_open_creates_a_0600_file_even_with_a_permissive_umask(db: Path) -> None:
    old = os.umask(0o022)
    try:
        store = StateStore(db)
        await store.open()
    finally:
        os.umask(old)
    try:
        await store.write(put("n", "k", "v"))
        assert file_mode(db) == 0o600
        for suffix in ("-wal", "-shm"):
            sidecar = db.with_name(db.name + suffix)
            assert sidecar.exists() and file_mode(sidecar) == 0o600
    finally:
        await store.close()


async def test_open_resets_a_loose_mode_with_a_warning(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o644))
    os.chmod(db, 0o644)  # in case the umask took bits away
    store = StateStore(db)
    with caplog.at_level(logging.WARNING, logger="clawgate.store"):
        await store.open()
    await store.close()
    assert file_mode(db) == 0o600
    assert f"reset permissions of {db} to 0600" in caplog.text


async def test_connection_uses_wal_full_sync_and_foreign_keys(store: StateStore) -> None:
    def pragmas(conn: sqlite3.Connection) -> tuple[str, int, int]:
        (journal,) = conn.execute("PRAGMA journal_mode").fetchone()
        (sync,) = conn.execute("PRAGMA synchronous").fetchone()
        (fks,) = conn.execute("PRAGMA foreign_keys").fetchone()
        return journal, sync, fks

    assert await store.read(pragmas) == ("wal", 2, 1)  # synchronous 2 is FULL


async def test_an_empty_file_is_a_new_database_not_a_corrupt_one(db: Path) -> None:
    os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o600))
    store = StateStore(db)
    report = await store.open()
    await store.close()
    assert report.recovered_from is None and report.schema_version == len(MIGRATIONS)


async def test_a_directory_in_the_way_is_an_error_and_is_left_alone(db: Path) -> None:
    os.mkdir(db)
    store = StateStore(db)
    with pytest.raises(StoreError, match=r"state\.db"):
        await store.open()
    await store.close()
    assert listing(db.parent) == ["state.db"]
    assert stat.S_ISDIR(os.stat(db).st_mode)


# Identity and the meta record


async def test_daemon_id_is_a_uuid4_and_stable_across_reopen(db: Path) -> None:
    first = StateStore(db, clock=lambda: 1_700_000_000.0)
    report = await first.open()
    await first.close()
    second = StateStore(db, clock=lambda: 1_800_000_000.0)
    again = await second.open()
    created_at = await second.read(
        lambda conn: conn.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchone()[0]
    )
    await second.close()
    assert uuid.UUID(report.daemon_id).version == 4
    assert again.daemon_id == report.daemon_id == first.daemon_id == second.daemon_id
    assert created_at == "2023-11-14T22:13:20.000Z"  # from the first open's clock


async def test_meta_records_the_schema_version(store: StateStore) -> None:
    value = await store.read(
        lambda conn: conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    )
    assert value == (str(store.schema_version),)
    assert store.schema_version == len(MIGRATIONS)


async def test_kv_rejects_a_null_namespace(store: StateStore) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        await store.write(put(None, "k", "v"))  # type: ignore[arg-type]


# Reads and writes


async def test_write_commits_and_read_sees_it(store: StateStore, db: Path) -> None:
    await store.write(put("n", "k", "v"))
    assert await store.read(get("n", "k")) == "v"
    with sqlite3.connect(db) as other:  # committed: visible to another connection
        assert other.execute("SELECT value FROM kv").fetchall() == [("v",)]


async def test_write_rolls_back_when_fn_raises(store: StateStore) -> None:
    def insert_then_fail(conn: sqlite3.Connection) -> None:
        put("n", "k", "v")(conn)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await store.write(insert_then_fail)
    assert await store.read(count_kv) == 0
    await store.write(put("n", "k2", "v"))  # the store is still usable
    assert await store.read(count_kv) == 1


async def test_write_refuses_a_fn_that_commits_itself(store: StateStore) -> None:
    def commit(conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    with pytest.raises(StoreError, match="ended its own transaction"):
        await store.write(commit)
    await store.write(put("n", "k", "v"))


async def test_read_cannot_write(store: StateStore) -> None:
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await store.read(put("n", "k", "v"))
    await store.write(put("n", "k", "v"))  # query_only was switched back off
    assert await store.read(count_kv) == 1


async def test_read_that_leaves_a_transaction_open_is_rolled_back(store: StateStore) -> None:
    with pytest.raises(StoreError, match="left a transaction open"):
        await store.read(lambda conn: conn.execute("BEGIN"))
    await store.write(put("n", "k", "v"))


async def test_concurrent_increments_give_the_exact_total(store: StateStore) -> None:
    await store.write(put("counter", "c", "0"))

    def increment(conn: sqlite3.Connection) -> int:
        value = int(get("counter", "c")(conn) or "0") + 1
        put("counter", "c", str(value))(conn)
        return value

    async def read_value() -> int:
        return int(await store.read(get("counter", "c")) or "0")

    results = await asyncio.gather(
        *(store.write(increment) for _ in range(200)), *(read_value() for _ in range(50))
    )
    increments = results[:200]
    assert sorted(increments) == list(range(1, 201))
    assert await read_value() == 200


async def test_calls_run_in_submission_order(store: StateStore) -> None:
    # Called without an await in between: the read is queued after the write.
    write = store.write(put("n", "k", "v"))
    read = store.read(get("n", "k"))
    assert await read == "v"
    await write


async def test_calls_run_on_one_thread_that_is_not_the_loop(store: StateStore) -> None:
    idents = await asyncio.gather(*(store.read(lambda _: threading.get_ident()) for _ in range(20)))
    assert len(set(idents)) == 1 and idents[0] != threading.get_ident()


async def test_cancelled_caller_does_not_withdraw_its_write(store: StateStore) -> None:
    errors: list[dict[str, object]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))

    def slow_put(conn: sqlite3.Connection) -> None:
        time.sleep(0.1)
        put("n", "k", "v")(conn)

    task = asyncio.create_task(store.write(slow_put))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.read(get("n", "k")) == "v"
    assert errors == []


# Migrations


async def test_migrations_run_once_and_in_order(db: Path) -> None:
    ran: list[int] = []

    def record(version: int) -> Migration:
        def apply(conn: sqlite3.Connection) -> None:
            ran.append(version)
            conn.execute(f"CREATE TABLE t{version} (x)")

        return Migration(version, f"table t{version}", apply)

    two = (*BASE, record(2))
    three = (*two, record(3))
    for migrations in (two, two, three, three):
        store = StateStore(db, migrations=migrations)
        report = await store.open()
        await store.close()
        assert report.schema_version == len(migrations)
    assert ran == [2, 3]
    assert user_version(db) == 3
    assert {"meta", "kv", "t2", "t3"} <= tables(db)


async def test_sql_script_migration_with_a_trigger(db: Path) -> None:
    script = """
        CREATE TABLE log (entry TEXT NOT NULL);
        CREATE TRIGGER kv_logged AFTER INSERT ON kv BEGIN
            INSERT INTO log VALUES ('inserted; ' || new.key);
        END;
    """
    store = StateStore(db, migrations=(*BASE, Migration(2, "log kv inserts", script)))
    await store.open()
    try:
        await store.write(put("n", "k", "v"))
        rows = await store.read(lambda conn: conn.execute("SELECT entry FROM log").fetchall())
    finally:
        await store.close()
    assert rows == [("inserted; k",)]


async def test_failing_migration_rolls_back_and_keeps_the_version(db: Path) -> None:
    store = StateStore(db, migrations=BASE)
    await store.open()
    await store.close()

    def half_done(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half (x)")
        conn.execute("INSERT INTO kv VALUES ('n', 'k', 'v', 0)")
        raise RuntimeError("migration bug")

    failing = StateStore(db, migrations=(*BASE, Migration(2, "half done", half_done)))
    with pytest.raises(StoreError, match=r"migration 2 \(half done\) failed") as caught:
        await failing.open()
    await failing.close()  # safe after a failed open
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert user_version(db) == 1
    assert "half" not in tables(db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM kv").fetchone() == (0,)


async def test_failing_sql_script_migration_rolls_back_every_statement(db: Path) -> None:
    script = "CREATE TABLE first (x); CREATE TABLE first (x);"
    store = StateStore(db, migrations=(*BASE, Migration(2, "broken", script)))
    with pytest.raises(StoreError, match="migration 2"):
        await store.open()
    assert user_version(db) == 1  # migration 1 committed on its own
    assert "first" not in tables(db)


async def test_too_new_database_is_refused_and_left_unchanged(db: Path) -> None:
    newer = StateStore(db, migrations=(*BASE, Migration(2, "future", "CREATE TABLE f (x);")))
    await newer.open()
    await newer.close()
    before = digest(db)

    store = StateStore(db, migrations=BASE)
    with pytest.raises(StoreTooNewError, match="upgrade clawgate") as caught:
        await store.open()
    assert (caught.value.found, caught.value.known) == (2, 1)
    assert store_threads() == []  # the failed open stopped its thread by itself
    await store.close()
    assert digest(db) == before
    assert listing(db.parent) == ["state.db"]


# Open and close


async def test_close_stops_the_thread_and_removes_the_wal(db: Path) -> None:
    store = StateStore(db)
    await store.open()
    assert len(store_threads()) == 1
    await store.write(put("n", "k", "v"))
    await store.close()
    assert store_threads() == []
    assert not db.with_name("state.db-wal").exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM kv").fetchone() == (1,)


async def test_close_is_idempotent_and_safe_before_open(db: Path) -> None:
    never_opened = StateStore(db)
    await never_opened.close()
    store = StateStore(db)
    await store.open()
    await asyncio.gather(store.close(), store.close())
    await store.close()


async def test_close_finishes_calls_queued_before_it(db: Path) -> None:
    store = StateStore(db)
    await store.open()
    # Nothing awaited yet: each call is queued by write() itself, before close() is.
    writes = [store.write(put("n", f"k{i}", "v")) for i in range(50)]
    await store.close()
    await asyncio.gather(*writes)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM kv").fetchone() == (50,)


async def test_calls_after_close_are_refused(store: StateStore) -> None:
    await store.close()
    with pytest.raises(StoreClosedError):
        store.read(count_kv)
    with pytest.raises(StoreClosedError):
        store.write(put("n", "k", "v"))


async def test_calls_before_open_are_refused(db: Path) -> None:
    store = StateStore(db)
    with pytest.raises(StoreClosedError):
        store.read(count_kv)
    with pytest.raises(StoreClosedError):
        _ = store.daemon_id


async def test_a_store_opens_only_once(store: StateStore) -> None:
    with pytest.raises(StoreError, match="only once"):
        await store.open()


async def test_close_during_open_wins(db: Path) -> None:
    store = StateStore(db)
    opening = asyncio.ensure_future(store.open())
    await asyncio.sleep(0)  # let open() queue its work
    await store.close()
    with pytest.raises(StoreClosedError):
        await opening
