"""Closed exec approvals in a real state.db: newest first, paged by cursor, bounded."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clawgate.protocol.approval_history import (
    ApprovalOutcome,
    ClosedApproval,
    HistoryCursor,
    ResolverKind,
)
from clawgate.store import StateStore, approvals_repo

BASE = ClosedApproval(
    id="",
    node_id="node-1",
    command="ls",
    requested_by="cli",
    outcome=ApprovalOutcome.DENY,
    resolver_kind=ResolverKind.RUNTIME,
    resolver_id="cli",
    resolved_by="cli",
    created_at_ms=0,
    expires_at_ms=120_000,
    resolved_at_ms=0,
)


def closed(approval_id: str, resolved_at_ms: int) -> ClosedApproval:
    return dataclasses.replace(BASE, id=approval_id, resolved_at_ms=resolved_at_ms)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    store = StateStore(tmp_path / "state.db")
    await store.open()
    yield store
    await store.close()


async def record(store: StateStore, *rows: ClosedApproval, keep: int = 100) -> None:
    for row in rows:
        await store.write(lambda conn, row=row: approvals_repo.record_closed(conn, row, keep))


async def listed(
    store: StateStore, after: HistoryCursor | None = None, limit: int = 100
) -> list[str]:
    rows = await store.read(lambda conn: approvals_repo.list_closed(conn, after, limit))
    return [row.id for row in rows]


async def test_closed_approvals_come_back_newest_first(store: StateStore) -> None:
    await record(store, closed("a", 1), closed("c", 3), closed("b", 2))
    assert await listed(store) == ["c", "b", "a"]


async def test_a_row_comes_back_whole(store: StateStore) -> None:
    await record(store, closed("a", 1))
    rows = await store.read(lambda conn: approvals_repo.list_closed(conn, None, 10))
    assert rows == [closed("a", 1)]


async def test_same_time_rows_are_ordered_by_id(store: StateStore) -> None:
    await record(store, closed("a", 5), closed("b", 5))
    assert await listed(store) == ["b", "a"]


async def test_a_cursor_continues_after_its_row(store: StateStore) -> None:
    await record(store, closed("a", 1), closed("b", 5), closed("c", 5), closed("d", 9))
    assert await listed(store, HistoryCursor(5, "c")) == ["b", "a"]


async def test_only_the_newest_are_kept(store: StateStore) -> None:
    await record(store, closed("a", 1), closed("b", 2), closed("c", 3), closed("d", 4), keep=2)
    assert await listed(store) == ["d", "c"]


async def test_the_history_survives_a_restart(store: StateStore) -> None:
    await record(store, closed("a", 1))
    await store.close()
    reopened = StateStore(store.path)
    await reopened.open()
    try:
        assert await listed(reopened) == ["a"]
    finally:
        await reopened.close()
