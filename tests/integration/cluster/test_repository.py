"""The hub's store behaves the same on SQLite and on PostgreSQL (one interface, two backends).

Each test runs on both; the PostgreSQL ones also check what several instances need: two
stores on one database race without breaking revisions, idempotency or terminal acks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from clawgate.hub.repo_store import RepositoryHubStore, SqliteHubStore, postgres_store
from clawgate.hub.store import HubStoreError, NewCommand, RevisionConflict, SessionInfo
from clawgate.protocol.timefmt import format_time
from clawgate.store.hub_schema import HUB_STEPS

NOW = "2030-01-01T00:00:00.000Z"


def command(command_id: str, daemon_id: str = "d1", key: str | None = None) -> NewCommand:
    return NewCommand(
        command_id=command_id,
        daemon_id=daemon_id,
        name="a.b",
        target={"plugin": "p"},
        params={"n": 1},
        secret_names=[],
        idempotency_key=key,
        issued_at=format_time(time.time()),
        expires_at=format_time(time.time() + 300),
        timeout_ms=None,
    )


def session(daemon_id: str, session_id: str, instance_id: str = "i1") -> SessionInfo:
    return SessionInfo(
        daemon_id=daemon_id,
        session_id=session_id,
        instance_id=instance_id,
        key_id="k1",
        hostname="h",
        platform="linux",
        daemon_version="1",
        arch="x86_64",
        plugins=[],
        last_applied_revision=0,
        queue_depth=0,
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[RepositoryHubStore]:
    if request.param == "sqlite":
        opened: RepositoryHubStore = SqliteHubStore(tmp_path / "hub.db")
    else:
        opened = postgres_store(request.getfixturevalue("pg_url"))
    await opened.open()
    yield opened
    await opened.close()


async def test_keys_are_found_by_hash_until_revoked(store: RepositoryHubStore) -> None:
    await store.add_key("k1", "hash1", "first", NOW)
    await store.add_key("k2", "hash2", "second", NOW)
    assert [k.key_id for k in await store.list_keys()] == ["k2", "k1"]
    assert (await store.find_key("hash1")).key_id == "k1"  # type: ignore[union-attr]
    revoked = await store.revoke_key("k1", NOW)
    assert revoked is not None and revoked.revoked_at == NOW
    assert await store.find_key("hash1") is None
    assert await store.revoke_key("nope", NOW) is None
    assert await store.revoked_keys(["k1", "k2", "k3"]) == {"k1"}


async def test_revisions_count_up_and_a_stale_if_revision_conflicts(
    store: RepositoryHubStore,
) -> None:
    first = await store.put_desired("d1", [{"id": "x"}], lambda _r: b"sealed", None, NOW)
    second = await store.put_desired("d1", [], lambda _r: None, 1, NOW)
    assert (first.revision, second.revision) == (1, 2)
    with pytest.raises(RevisionConflict) as caught:
        await store.put_desired("d1", [], lambda _r: None, 1, NOW)
    assert caught.value.current == 2
    stored = await store.get_desired("d1")
    assert stored is not None and stored.revision == 2 and stored.integrations == []
    assert first.sealed == b"sealed"


async def test_an_idempotency_key_returns_the_first_command(store: RepositoryHubStore) -> None:
    first, created = await store.add_command(command("c1", key="k"))
    again, created_again = await store.add_command(command("c2", key="k"))
    assert (created, created_again) == (True, False)
    assert again.command_id == first.command_id == "c1"


async def test_only_the_first_terminal_ack_is_recorded(store: RepositoryHubStore) -> None:
    await store.add_command(command("c1"))
    ack = {"commandId": "c1", "attempt": 1, "at": NOW}
    accepted = await store.record_ack("d1", {**ack, "state": "accepted"}, NOW)
    done = await store.record_ack("d1", {**ack, "state": "done", "result": {"ok": 1}}, NOW)
    late = await store.record_ack("d1", {**ack, "state": "failed", "error": {"code": "X"}}, NOW)
    assert accepted is not None and accepted.changed
    assert done is not None and done.changed and done.record.terminal
    assert late is not None and not late.changed
    record = await store.get_command("c1")
    assert record is not None and record.state == "done" and record.result == {"ok": 1}
    assert [a["state"] for a in record.acks] == ["accepted", "done"]
    assert await store.record_ack("other", {**ack, "state": "done"}, NOW) is None


async def test_unsettled_commands_come_in_issue_order(store: RepositoryHubStore) -> None:
    for n in range(5):
        await store.add_command(command(f"c{n}"))
    await store.record_ack("d1", {"commandId": "c2", "state": "done", "attempt": 1, "at": NOW}, NOW)
    unsettled = await store.unsettled_commands("d1", format_time(time.time()))
    assert [c.command_id for c in unsettled] == ["c0", "c1", "c3", "c4"]


async def test_listed_commands_come_newest_first_and_only_the_daemons(
    store: RepositoryHubStore,
) -> None:
    for n in range(4):
        await store.add_command(command(f"c{n}"))
    await store.add_command(command("other", daemon_id="d2"))
    listed = await store.list_commands("d1", 3)
    assert [record.command_id for record in listed] == ["c3", "c2", "c1"]


async def test_the_sweep_reads_owner_revision_and_open_commands(store: RepositoryHubStore) -> None:
    await store.open_session(session("d1", "s1"), NOW)
    await store.put_desired("d1", [], lambda _r: None, None, NOW)
    await store.add_command(command("c1"))
    await store.open_session(session("d1", "s2", "i2"), NOW)
    [row] = await store.sweep(["d1", "unknown"], format_time(time.time()))
    assert (row.session_id, row.desired_revision, row.unsettled) == ("s2", 1, ["c1"])


async def test_a_daemon_is_connected_only_while_its_instance_beats(
    store: RepositoryHubStore,
) -> None:
    now = time.time()
    await store.beat("i1", now)
    await store.open_session(session("d1", "s1", "i1"), NOW)
    [alive] = await store.list_daemons(alive_after=now - 10)
    assert alive.connected
    [gone] = await store.list_daemons(alive_after=now + 1)
    assert not gone.connected
    await store.close_session("d1", "s1", NOW)
    daemon = await store.get_daemon("d1", alive_after=now - 10)
    assert daemon is not None and not daemon.connected


async def test_closing_an_old_session_keeps_the_new_one(store: RepositoryHubStore) -> None:
    await store.beat("i1", time.time())
    await store.open_session(session("d1", "s1"), NOW)
    await store.open_session(session("d1", "s2"), NOW)
    await store.close_session("d1", "s1", NOW)
    daemon = await store.get_daemon("d1", alive_after=0)
    assert daemon is not None and daemon.connected and daemon.session_id == "s2"


async def test_reports_keep_the_newest_and_update_convergence(store: RepositoryHubStore) -> None:
    for revision in range(1, 4):
        report = {"revision": revision, "converged": revision == 3, "superseded": False}
        await store.add_report("d1", report, NOW)
    await store.open_session(session("d1", "s1"), NOW)
    await store.add_report("d1", {"revision": 3, "converged": True, "superseded": False}, NOW)
    reports = await store.list_reports("d1", 2)
    assert [r["revision"] for r in reports] == [3, 3]
    daemon = await store.get_daemon("d1", alive_after=0)
    assert daemon is not None and daemon.converged is True
    assert daemon.last_applied_revision == 3


# PostgreSQL only: what several instances on one database need.


async def test_schema_steps_are_recorded_once_when_instances_start_together(
    pg_url: str,
) -> None:
    stores = [postgres_store(pg_url) for _ in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    for s in stores:
        await s.close()
    conn = await asyncpg.connect(pg_url)
    try:
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM hub_schema")]
    finally:
        await conn.close()
    assert sorted(versions) == [s.version for s in HUB_STEPS]


async def test_two_instances_never_take_the_same_revision(pg_url: str) -> None:
    a, b = postgres_store(pg_url), postgres_store(pg_url)
    await a.open()
    await b.open()
    try:
        writes = [
            store.put_desired("d1", [], lambda _r: None, None, NOW)
            for _ in range(10)
            for store in (a, b)
        ]
        revisions = sorted(r.revision for r in await asyncio.gather(*writes))
    finally:
        await a.close()
        await b.close()
    assert revisions == list(range(1, 21))


async def test_two_instances_racing_one_idempotency_key_store_one_command(pg_url: str) -> None:
    a, b = postgres_store(pg_url), postgres_store(pg_url)
    await a.open()
    await b.open()
    try:
        results = await asyncio.gather(
            a.add_command(command("ca", key="same")), b.add_command(command("cb", key="same"))
        )
    finally:
        await a.close()
        await b.close()
    assert sorted(created for _, created in results) == [False, True]
    assert len({record.command_id for record, _ in results}) == 1


async def test_two_instances_racing_terminal_acks_record_one(pg_url: str) -> None:
    a, b = postgres_store(pg_url), postgres_store(pg_url)
    await a.open()
    await b.open()
    try:
        await a.add_command(command("c1"))
        base = {"commandId": "c1", "attempt": 1, "at": NOW}
        outcomes = await asyncio.gather(
            a.record_ack("d1", {**base, "state": "done", "result": 1}, NOW),
            b.record_ack("d1", {**base, "state": "failed", "error": {"code": "X"}}, NOW),
        )
        record = await a.get_command("c1")
    finally:
        await a.close()
        await b.close()
    assert sorted(o.changed for o in outcomes if o is not None) == [False, True]
    assert record is not None and len(record.acks) == 1 and record.terminal


async def test_an_unreachable_postgres_is_a_store_error(pg_server: object) -> None:
    store = postgres_store("postgresql://clawgate@127.0.0.1:1/none")
    with pytest.raises(HubStoreError, match="cannot open"):
        await store.open()


async def test_a_failing_write_fails_alone_in_its_batch(store: RepositoryHubStore) -> None:
    results = await asyncio.gather(
        store.add_key("k1", "same-hash", "a", NOW),
        store.add_key("k2", "same-hash", "b", NOW),  # breaks the unique hash
        store.add_key("k3", "other-hash", "c", NOW),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results] == ["KeyRecord", "HubStoreError", "KeyRecord"]
    assert sorted(k.key_id for k in await store.list_keys()) == ["k1", "k3"]


async def test_last_seen_is_written_for_sessions_that_still_hold(
    store: RepositoryHubStore,
) -> None:
    await store.open_session(session("d1", "s1"), NOW)
    await store.open_session(session("d2", "s2"), NOW)
    later = "2030-01-01T00:01:00.000Z"
    await store.touch([("d1", "s1"), ("d2", "old-session")], later)
    seen = {d.daemon_id: d.last_seen_at for d in await store.list_daemons(alive_after=0)}
    assert seen == {"d1": later, "d2": NOW}
