"""Group commit on a real state.db: one transaction per loop pass, each caller its own outcome."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from clawgate.store import StateStore
from clawgate.store.group_writer import GroupWriter


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    store = StateStore(tmp_path / "state.db")
    await store.open()
    yield store
    await store.close()


def put(key: str) -> Callable[[sqlite3.Connection], str]:
    def write(conn: sqlite3.Connection) -> str:
        conn.execute(
            "INSERT INTO kv (namespace, key, value, updated_at) VALUES ('t', ?, 'v', 0)", (key,)
        )
        return key

    return write


def refuse(conn: sqlite3.Connection) -> None:
    put("half")(conn)
    raise ValueError("refused on purpose")


async def keys(store: StateStore) -> list[str]:
    rows = await store.read(lambda conn: conn.execute("SELECT key FROM kv ORDER BY key").fetchall())
    return [row[0] for row in rows]


async def test_writes_of_one_pass_commit_together_each_with_its_own_outcome(
    store: StateStore,
) -> None:
    writer = GroupWriter(store)
    outcomes = await asyncio.gather(
        writer.write(put("a")), writer.write(refuse), writer.write(put("b")), return_exceptions=True
    )
    assert outcomes[0] == "a" and outcomes[2] == "b"
    assert isinstance(outcomes[1], ValueError)
    # The refused write left nothing behind; its neighbours committed.
    assert await keys(store) == ["a", "b"]


async def test_a_failed_write_whose_caller_was_cancelled_is_logged(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer = GroupWriter(store)
    waiting = asyncio.ensure_future(writer.write(refuse))
    await asyncio.sleep(0)  # queued for the next pass, not yet run
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await writer.write(put("after"))  # the next pass runs after the cancelled one committed
    gc.collect()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["a channel write whose caller stopped waiting failed: refused on purpose"]
