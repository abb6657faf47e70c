"""Group commit on the owner thread: shared transactions, one failing write, order, closing."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clawgate.store import StoreClosedError
from clawgate.store._batch import WriteBatcher
from clawgate.store._thread import OwnerThread


@dataclass
class Db:
    owner: OwnerThread
    writes: WriteBatcher
    path: Path
    statements: list[str] = field(default_factory=list)
    conn: sqlite3.Connection | None = None

    def commits(self) -> int:
        return sum(1 for s in self.statements if s.strip().upper() == "COMMIT")

    async def rows(self) -> list[int]:
        def read() -> list[int]:
            assert self.conn is not None
            return [n for (n,) in self.conn.execute("SELECT n FROM t ORDER BY id")]

        return await self.owner.submit(read)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Db]:
    owner = OwnerThread("test-batch")
    owner.start()
    holder = Db(owner, WriteBatcher(owner.submit, lambda: _conn(holder)), tmp_path / "t.db")

    def open_db() -> None:
        conn = sqlite3.connect(holder.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, n INTEGER)")
        conn.set_trace_callback(holder.statements.append)
        holder.conn = conn

    await owner.submit(open_db)
    yield holder
    await holder.writes.flush()
    await owner.stop(lambda: _conn(holder).close())


def _conn(db: Db) -> sqlite3.Connection:
    assert db.conn is not None
    return db.conn


def insert(n: int) -> Callable[[sqlite3.Connection], int]:
    def write(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (n) VALUES (?)", (n,))
        return n

    return write


async def test_writes_handed_over_together_share_one_commit(db: Db) -> None:
    results = await asyncio.gather(*(db.writes.write(insert(n)) for n in range(50)))
    assert results == list(range(50))
    assert db.commits() == 1
    assert await db.rows() == list(range(50))


async def test_a_failing_write_is_rolled_back_alone(db: Db) -> None:
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (n) VALUES (-1)")
        raise ValueError("stale revision")

    outcomes = await asyncio.gather(
        db.writes.write(insert(1)),
        db.writes.write(half_then_fail),
        db.writes.write(insert(2)),
        return_exceptions=True,
    )
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], ValueError)
    assert await db.rows() == [1, 2]


async def test_writes_made_during_a_commit_join_the_next_in_order(db: Db) -> None:
    first = asyncio.ensure_future(db.writes.write(insert(0)))
    await asyncio.sleep(0)  # the first batch is queued on the thread now
    later = [db.writes.write(insert(n)) for n in range(1, 20)]
    await asyncio.gather(first, *later)
    assert await db.rows() == list(range(20))
    assert db.commits() == 2


async def test_a_cancelled_caller_still_gets_its_write_committed(db: Db) -> None:
    task = asyncio.ensure_future(db.writes.write(insert(7)))
    await asyncio.sleep(0)
    task.cancel()
    await db.writes.flush()
    assert await db.rows() == [7]


async def test_writes_on_a_stopped_thread_fail_with_store_closed(tmp_path: Path) -> None:
    owner = OwnerThread("test-batch-closed")
    owner.start()
    await owner.stop()
    writes = WriteBatcher(owner.submit, lambda: sqlite3.connect(tmp_path / "never.db"))
    with pytest.raises(StoreClosedError):
        await writes.write(insert(1))
    await writes.flush()
    assert not (tmp_path / "never.db").exists()
