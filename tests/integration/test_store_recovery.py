"""A corrupt state.db is moved aside, never deleted; inspect_store reports without changing."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawgate.store import (
    MIGRATIONS,
    THREAD_NAME,
    Migration,
    StateStore,
    StoreHealth,
    inspect_store,
)

# 2023-11-14T22:13:20Z
NOW = 1_700_000_000.0
STAMP = "20231114T221320Z"
PAGE = 4096


@pytest.fixture(autouse=True)
def no_thread_left() -> Iterator[None]:
    """Every test must leave no owner thread running."""
    yield
    assert [t for t in threading.enumerate() if t.name == THREAD_NAME] == []


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def make_database(db: Path, rows: int = 2000) -> str:
    """Create a real store with ``rows`` kv rows; return its daemon_id."""
    store = StateStore(db)
    report = await store.open()

    def fill(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT INTO kv VALUES ('n', ?, ?, 0)", ((f"k{i}", "v" * 60) for i in range(rows))
        )

    await store.write(fill)
    await store.close()  # checkpointed: every page is in the main file
    return report.daemon_id


def overwrite_page(db: Path, page_number: int) -> None:
    """Overwrite one page (numbered from 1) with bytes no b-tree page can start with."""
    assert db.stat().st_size >= page_number * PAGE
    with db.open("r+b") as file:
        file.seek((page_number - 1) * PAGE)
        file.write(b"\xff" * PAGE)


def page_count(db: Path) -> int:
    return db.stat().st_size // PAGE


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database\n" * 500)
    os.chmod(path, 0o600)


async def open_fresh(db: Path) -> tuple[StateStore, Path | None]:
    store = StateStore(db, clock=lambda: NOW)
    report = await store.open()
    return store, report.recovered_from


# Recovery at open


async def test_garbage_file_is_moved_aside_and_a_fresh_db_created(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_garbage(db)
    before = digest(db)
    with caplog.at_level(logging.WARNING, logger="clawgate.store"):
        store, recovered_from = await open_fresh(db)
    try:
        assert recovered_from == db.with_name(f"state.db.corrupt-{STAMP}")
        assert digest(recovered_from) == before  # nothing lost
        assert await store.read(lambda c: c.execute("SELECT count(*) FROM kv").fetchone()) == (0,)
        assert store.schema_version == len(MIGRATIONS)
        assert file_mode(db) == 0o600
    finally:
        await store.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    line = warnings[0].getMessage()
    assert str(db) in line and str(recovered_from) in line and "corrupt" in line


async def test_db_with_an_overwritten_page_is_moved_aside(db: Path) -> None:
    old_id = await make_database(db)
    overwrite_page(db, page_count(db) // 2)
    before = digest(db)
    store, recovered_from = await open_fresh(db)
    await store.close()
    assert recovered_from is not None and digest(recovered_from) == before
    assert store.daemon_id != old_id  # a fresh database has a fresh identity


async def test_sidecars_move_with_the_corrupt_file(db: Path) -> None:
    write_garbage(db)
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).write_bytes(suffix.encode() * 100)
    store, recovered_from = await open_fresh(db)
    await store.close()
    assert recovered_from is not None
    for suffix in ("-wal", "-shm"):
        moved = recovered_from.with_name(recovered_from.name + suffix)
        assert moved.read_bytes() == suffix.encode() * 100
    assert listing(db.parent) == [
        "state.db",
        f"state.db.corrupt-{STAMP}",
        f"state.db.corrupt-{STAMP}-shm",
        f"state.db.corrupt-{STAMP}-wal",
    ]


def wal_pages(wal: Path) -> set[int]:
    """Return the page numbers that have frames in a WAL file (32-byte header, 24 per frame)."""
    data = wal.read_bytes()
    frame = 24 + PAGE
    return {
        int.from_bytes(data[offset : offset + 4], "big")
        for offset in range(32, len(data) - frame + 1, frame)
    }


def copy_files(db: Path, target_dir: Path) -> Path:
    """Copy state.db and its sidecars as they are right now, like a crash would leave them."""
    target_dir.mkdir()
    for source in db.parent.glob("state.db*"):
        shutil.copy2(source, target_dir / source.name)
    return target_dir / db.name


async def test_wal_of_a_damaged_db_moves_aside_unchanged(db: Path, tmp_path: Path) -> None:
    await make_database(db)
    store = StateStore(db)
    await store.open()
    await store.write(
        lambda c: c.executemany(
            "INSERT INTO kv VALUES ('z', ?, 'v', 0)", ((str(i),) for i in range(50))
        )
    )
    crashed = copy_files(db, tmp_path / "crashed")
    await store.close()
    wal = crashed.with_name("state.db-wal")
    # Damage a page that has no newer copy in the WAL, or the WAL would hide the damage.
    in_wal = wal_pages(wal)
    assert in_wal
    middle = page_count(crashed) // 2
    overwrite_page(crashed, next(p for p in range(middle, 1, -1) if p not in in_wal))
    wal_before = digest(wal)

    recovered, recovered_from = await open_fresh(crashed)
    await recovered.close()
    assert recovered_from is not None
    assert digest(recovered_from.with_name(recovered_from.name + "-wal")) == wal_before


async def test_an_earlier_corrupt_copy_is_never_overwritten(db: Path) -> None:
    earlier = db.with_name(f"state.db.corrupt-{STAMP}")
    earlier.write_bytes(b"earlier")
    write_garbage(db)
    store, recovered_from = await open_fresh(db)
    await store.close()
    assert recovered_from == db.with_name(f"state.db.corrupt-{STAMP}.1")
    assert earlier.read_bytes() == b"earlier"


async def test_a_healthy_db_is_not_moved(db: Path) -> None:
    daemon_id = await make_database(db)
    store, recovered_from = await open_fresh(db)
    await store.close()
    assert recovered_from is None and store.daemon_id == daemon_id
    assert listing(db.parent) == ["state.db"]


# inspect_store


def test_inspect_missing_file_is_fine_and_creates_nothing(db: Path) -> None:
    health = inspect_store(db)
    assert health == StoreHealth(
        exists=False,
        integrity_ok=True,
        message=health.message,
        schema_version=0,
        known_version=len(MIGRATIONS),
        mode_ok=True,
    )
    assert health.ok and "does not exist yet" in health.message
    assert not db.parent.joinpath("state.db").exists()


async def test_inspect_healthy_db_changes_nothing(db: Path) -> None:
    await make_database(db)
    before = digest(db)
    health = inspect_store(db)
    assert health.ok and health.exists and health.integrity_ok and health.mode_ok
    assert health.schema_version == health.known_version == len(MIGRATIONS)
    assert "is ok" in health.message
    assert digest(db) == before
    assert listing(db.parent) == ["state.db"]  # no -wal/-shm left behind


async def test_inspect_reads_through_the_wal_of_an_open_store(db: Path) -> None:
    store = StateStore(db)
    await store.open()
    try:
        health = inspect_store(db)
    finally:
        await store.close()
    assert health.ok and health.schema_version == len(MIGRATIONS)


def test_inspect_garbage_file_reports_corruption_and_moves_nothing(db: Path) -> None:
    write_garbage(db)
    before = digest(db)
    health = inspect_store(db)
    assert health.exists and not health.integrity_ok and not health.ok
    assert "corrupt" in health.message and "move it aside" in health.message
    assert digest(db) == before
    assert listing(db.parent) == ["state.db"]


async def test_inspect_overwritten_page_reports_corruption(db: Path) -> None:
    await make_database(db)
    overwrite_page(db, page_count(db) // 2)
    health = inspect_store(db)
    assert not health.integrity_ok and "corrupt" in health.message


async def test_inspect_reports_a_loose_mode(db: Path) -> None:
    await make_database(db, rows=1)
    os.chmod(db, 0o644)
    health = inspect_store(db)
    assert health.integrity_ok and not health.mode_ok and not health.ok
    assert "0644" in health.message and "0600" in health.message


async def test_inspect_reports_a_too_new_schema(db: Path) -> None:
    future = (*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "future", "CREATE TABLE f (x);"))
    store = StateStore(db, migrations=future)
    await store.open()
    await store.close()
    health = inspect_store(db)
    assert health.integrity_ok and not health.ok
    assert health.schema_version == len(MIGRATIONS) + 1
    assert "upgrade clawgate" in health.message


def test_inspect_a_directory_is_not_ok(db: Path) -> None:
    db.mkdir()
    health = inspect_store(db)
    assert health.exists and not health.ok and "not a regular file" in health.message
