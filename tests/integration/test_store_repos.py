"""state.db repositories on real SQLite: rows and JSON in and out, on-disk forms unchanged."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clawgate.cloud.errors import ReconcileError
from clawgate.cloud.ledger import ItemStatus, LedgerItem
from clawgate.commands.model import Command, CommandState
from clawgate.store import StateStore, commands_repo, ledger_repo


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    store = StateStore(tmp_path / "state.db")
    await store.open()
    yield store
    await store.close()


# -- commands_repo ---------------------------------------------------------------------


def command(command_id: str, position: int) -> Command:
    return Command(
        command_id=command_id,
        name="repo.sync",
        target_key="plugin:git",
        secret_names=("token",),
        state=CommandState.ACCEPTED,
        position=position,
        updated_at=1_795_000_000_123,
    )


async def test_records_come_back_as_their_json_in_queue_order(store: StateStore) -> None:
    records = [command("b", 2), command("a", 1)]
    await store.write(lambda conn: commands_repo.save_commands(conn, records))
    loaded = await store.read(commands_repo.load_commands)
    assert loaded == [records[1].to_json(), records[0].to_json()]


async def test_key_columns_copy_the_json(store: StateStore) -> None:
    records = [command("a", 3)]
    await store.write(lambda conn: commands_repo.save_commands(conn, records))
    await store.close()
    with sqlite3.connect(store.path) as conn:
        stored = conn.execute(
            "SELECT command_id, target_key, state, position, updated_at FROM commands"
        ).fetchone()
    assert stored == ("a", "plugin:git", "accepted", 3, 1_795_000_000_123)


# -- ledger_repo -----------------------------------------------------------------------

ITEM = LedgerItem(
    id="github",
    status=ItemStatus.ERROR,
    installed_version="1.2.0",
    spec_hash="spec",
    config_hash="config",
    secret_fields=("token", "webhook"),
    enabled=False,
    active=True,
    owner="gh-plugin",
    last_action="install",
    attempts=3,
    error=ReconcileError("UNHEALTHY", "not ready", retryable=True, details={"after": [1, 2]}),
    next_attempt_at=1_795_000_000_000,
    applied_revision=7,
    depends_on=("base",),
    updated_at=1_795_000_000_123,
)


async def test_an_item_survives_its_row(store: StateStore) -> None:
    row = ITEM.to_row()
    await store.write(lambda conn: ledger_repo.save_items(conn, [row]))
    (loaded,) = await store.read(ledger_repo.load_items)
    assert loaded == row
    assert LedgerItem.from_row(loaded) == ITEM


async def test_list_and_error_columns_are_compact_json(store: StateStore) -> None:
    row = ITEM.to_row()
    await store.write(lambda conn: ledger_repo.save_items(conn, [row]))
    await store.close()
    with sqlite3.connect(store.path) as conn:
        stored = conn.execute(
            "SELECT secret_fields, enabled, status, error, depends_on FROM integrations"
        ).fetchone()
    assert stored == (
        '["token","webhook"]',
        0,
        "error",
        '{"code":"UNHEALTHY","message":"not ready","retryable":true,"details":{"after":[1,2]}}',
        '["base"]',
    )


async def test_deleted_items_are_gone(store: StateStore) -> None:
    row = ITEM.to_row()
    await store.write(lambda conn: ledger_repo.save_items(conn, [row]))
    await store.write(lambda conn: ledger_repo.delete_items(conn, [ITEM.id]))
    assert await store.read(ledger_repo.load_items) == []
