"""A late delivery failure (a platform's status report) marks the recorded send failed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from clawgate.store import MIGRATIONS
from clawgate.store._migrations import run_migrations
from clawgate.store.channels_repo import (
    LATE_FAILURE_WINDOW,
    OutboundRow,
    load_outbound,
    mark_outbound_failed,
    record_outbound,
)


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    path = tmp_path / "state.db"
    connection = sqlite3.connect(path, isolation_level=None)
    run_migrations(connection, MIGRATIONS, path)
    yield connection
    connection.close()


def sent(conn: sqlite3.Connection, *ids: str, account: str = "default") -> None:
    row = OutboundRow(
        "whatsapp", account, "1555", None, None, None, "sent", json.dumps(ids), 1, None, 0
    )
    record_outbound(conn, row)


def test_the_record_holding_the_message_id_is_marked_failed_with_the_reason(
    conn: sqlite3.Connection,
) -> None:
    sent(conn, "wamid.A")
    sent(conn, "wamid.B1", "wamid.B2")
    assert mark_outbound_failed(conn, "whatsapp", "default", "wamid.B2", "131047 window")
    [newest, oldest] = load_outbound(conn)
    assert (newest.state, newest.error) == ("failed", "131047 window")
    assert (oldest.state, oldest.error) == ("sent", None)


def test_an_unknown_message_id_or_another_account_changes_nothing(
    conn: sqlite3.Connection,
) -> None:
    sent(conn, "wamid.A", account="shop")
    assert not mark_outbound_failed(conn, "whatsapp", "default", "wamid.A", "x")
    assert not mark_outbound_failed(conn, "whatsapp", "shop", "wamid.nope", "x")
    assert [r.state for r in load_outbound(conn)] == ["sent"]


def test_only_the_newest_records_of_the_account_are_searched(conn: sqlite3.Connection) -> None:
    sent(conn, "wamid.old")
    for n in range(LATE_FAILURE_WINDOW):
        sent(conn, f"wamid.{n}")
    assert not mark_outbound_failed(conn, "whatsapp", "default", "wamid.old", "x")
    assert mark_outbound_failed(conn, "whatsapp", "default", "wamid.0", "x")


def test_the_lookup_reads_only_the_accounts_own_records(conn: sqlite3.Connection) -> None:
    # Other accounts' deliveries stay unread however many there are.
    for n in range(50):
        sent(conn, f"wamid.shop.{n}", account="shop")
    sent(conn, "wamid.mine")
    conn.execute("ANALYZE")
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM channel_outbound"
        " WHERE channel = 'whatsapp' AND account = 'default' ORDER BY id DESC LIMIT 1000"
    ).fetchall()
    assert any("channel_outbound_by_account" in str(step) for step in plan), plan
    assert mark_outbound_failed(conn, "whatsapp", "default", "wamid.mine", "x")
