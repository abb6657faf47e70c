"""CommandService on a real state.db: commits, restart recovery and no secret on disk."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from clawgate.commands import (
    Command,
    CommandBook,
    CommandError,
    CommandService,
    CommandState,
    Outcome,
    parse_command,
)
from clawgate.store import StateStore, StoreClosedError

T0 = 1_800_000_000_000
TTL = 300_000
SECRET = "Zq9-very-secret-value-7781"


class Clock:
    """A settable hub clock in milliseconds."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def command_frame(cid: str, target: dict[str, str], *, secret: bool = False) -> dict[str, object]:
    frame: dict[str, object] = {
        "commandId": cid,
        "name": "notes.create",
        "target": target,
        "params": {"title": cid},
        "issuedAt": T0,
    }
    if secret:
        frame["secrets"] = {"token": SECRET}
    return frame


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(db: Path) -> AsyncIterator[StateStore]:
    store = StateStore(db)
    await store.open()
    yield store
    await store.close()


async def restarted(db: Path, clock: Clock) -> tuple[StateStore, CommandService, list[Command]]:
    store = StateStore(db)
    await store.open()
    service = CommandService(store, CommandBook(ttl_ms=TTL), clock=clock)
    changed = await service.load_on_start()
    return store, service, changed


async def submit(service: CommandService, cid: str, target: dict[str, str], **kw: bool) -> Outcome:
    command, secrets = parse_command(command_frame(cid, target, secret=kw.pop("secret", False)), T0)
    live = kw.pop("live", False)
    decision = await service.submit(command, secrets, live_route=live, has_capacity=live)
    return decision.outcome


def stored_states(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT command_id, state FROM commands").fetchall())
    finally:
        conn.close()


def disk_bytes(db: Path) -> bytes:
    """Return the bytes of state.db and its WAL, if any."""
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


async def test_every_change_is_committed_before_the_call_returns(
    store: StateStore, clock: Clock
) -> None:
    service = CommandService(store, CommandBook(ttl_ms=TTL), clock=clock)
    assert await submit(service, "c1", {"plugin": "desk"}, live=True) is Outcome.ACCEPTED
    assert await submit(service, "c2", {"plugin": "desk"}) is Outcome.QUEUED
    rows = await store.read(
        lambda conn: conn.execute("SELECT command_id, state FROM commands").fetchall()
    )
    assert dict(rows) == {"c1": "accepted", "c2": "queued"}
    await service.complete("c1", result={"id": 1})
    clock.now = T0 + TTL
    await service.expire_due()
    rows = await store.read(
        lambda conn: conn.execute("SELECT command_id, state FROM commands").fetchall()
    )
    assert dict(rows) == {"c1": "succeeded", "c2": "expired"}


async def test_queued_commands_survive_a_restart_in_order(db: Path, clock: Clock) -> None:
    store, service, _ = await restarted(db, clock)
    for cid, target in [("a1", "desk"), ("b1", "other"), ("a2", "desk"), ("a3", "desk")]:
        assert await submit(service, cid, {"plugin": target}) is Outcome.QUEUED
    head = service.next_for("plugin:desk")
    assert head is not None
    await service.start(head.command_id)
    await service.plugin_disconnected([head.command_id])
    await store.close()

    clock.now = T0 + 1000
    store, service, changed = await restarted(db, clock)
    try:
        assert changed == []
        assert [c["commandId"] for c in service.list_queued()] == ["a1", "a2", "a3", "b1"]
        assert service.depth() == 4
        assert service.by_target() == {"plugin:desk": 3, "plugin:other": 1}
        first = service.next_for("plugin:desk")
        assert first is not None and first.attempt == 2
        started = []
        while (head := service.next_for("plugin:desk")) is not None:
            started.append((await service.start(head.command_id)).command_id)
        assert started == ["a1", "a2", "a3"]
    finally:
        await store.close()


async def test_restart_applies_the_recovery_table(db: Path, clock: Clock) -> None:
    store, service, _ = await restarted(db, clock)
    await submit(service, "secret-queued", {"plugin": "p"}, secret=True)
    await submit(service, "plain-queued", {"plugin": "p"})
    await submit(service, "interrupted", {"plugin": "q"}, live=True)
    await submit(service, "done", {"plugin": "r"}, live=True)
    await service.complete("done", result="ok")
    await store.close()

    clock.now = T0 + 10
    store, service, changed = await restarted(db, clock)
    try:
        states = {c.command_id: c.state for c in changed}
        assert states == {
            "secret-queued": CommandState.FAILED,
            "interrupted": CommandState.QUEUED,
        }
        assert stored_states(db) == {
            "secret-queued": "failed",
            "plain-queued": "queued",
            "interrupted": "queued",
            "done": "succeeded",
        }
        again = await submit(service, "done", {"plugin": "r"}, live=True)
        assert again is Outcome.DUPLICATE
    finally:
        await store.close()


async def test_restart_after_the_deadline_expires_queued_commands(db: Path, clock: Clock) -> None:
    store, service, _ = await restarted(db, clock)
    await submit(service, "c1", {"capability": "notes"})
    await store.close()
    clock.now = T0 + TTL
    store, service, changed = await restarted(db, clock)
    await store.close()
    assert [c.state for c in changed] == [CommandState.EXPIRED]
    assert stored_states(db) == {"c1": "expired"}


async def test_prune_deletes_rows_past_retention(db: Path, clock: Clock) -> None:
    store, service, _ = await restarted(db, clock)
    try:
        await submit(service, "c1", {"plugin": "p"}, live=True)
        await service.complete("c1", error=CommandError("TIMEOUT", "slow", True))
        clock.now = T0 + TTL + 24 * 3600 * 1000
        assert await service.prune() == ["c1"]
    finally:
        await store.close()
    assert stored_states(db) == {}


async def test_secret_values_never_reach_the_database_files(db: Path, clock: Clock) -> None:
    store, service, _ = await restarted(db, clock)
    needle = SECRET.encode()
    try:
        await submit(service, "q1", {"plugin": "p"}, secret=True)
        await submit(service, "a1", {"plugin": "x"}, secret=True, live=True)
        assert service.secrets_for("a1") == {"token": SECRET}
        await service.complete(
            "a1", error=CommandError("BOOM", f"plugin echoed {SECRET}", False, {"v": SECRET})
        )
        await submit(service, "a2", {"plugin": "y"}, secret=True, live=True)
        await service.complete("a2", result={"echo": SECRET})
        assert SECRET not in repr(service.list_queued())
        on_disk = disk_bytes(db)
        assert b"token" in on_disk  # the secret's name is recorded...
        assert needle not in on_disk  # ...its value never is.
    finally:
        await store.close()
    assert needle not in disk_bytes(db)


async def test_commit_listeners_see_each_commit_once_it_is_on_disk(
    db: Path, store: StateStore, clock: Clock
) -> None:
    service = CommandService(store, CommandBook(ttl_ms=TTL), clock=clock)
    seen: list[tuple[str, str, str | None]] = []

    def listener(records: Sequence[Command]) -> None:
        on_disk = stored_states(db)
        seen.extend((r.command_id, r.state.value, on_disk.get(r.command_id)) for r in records)

    def broken(records: Sequence[Command]) -> None:
        raise RuntimeError("a listener bug must not undo or hide the commit")

    unsubscribe = service.subscribe(listener)
    service.subscribe(broken)
    await submit(service, "c1", {"plugin": "desk"}, live=True)
    await service.complete("c1", result="ok")
    unsubscribe()
    await submit(service, "c2", {"plugin": "desk"})
    assert seen == [("c1", "accepted", "accepted"), ("c1", "succeeded", "succeeded")]
    assert stored_states(db) == {"c1": "succeeded", "c2": "queued"}


async def test_concurrent_changes_share_commits_and_each_caller_waits_for_its_own(
    db: Path, store: StateStore, clock: Clock
) -> None:
    service = CommandService(store, CommandBook(ttl_ms=TTL), clock=clock)
    batches: list[int] = []
    service.subscribe(lambda records: batches.append(len(records)))

    async def submit_and_check(cid: str) -> None:
        await submit(service, cid, {"plugin": "desk"})
        assert stored_states(db).get(cid) == "queued", f"{cid} returned before its commit"

    await asyncio.gather(*(submit_and_check(f"c{n}") for n in range(30)))
    assert sum(batches) == 30
    assert len(batches) < 30  # one fsync'd transaction per change would be 30
    assert [c["commandId"] for c in service.list_queued()] == [f"c{n}" for n in range(30)]


async def test_a_failed_commit_reaches_every_caller_in_its_batch(
    store: StateStore, clock: Clock
) -> None:
    service = CommandService(store, CommandBook(ttl_ms=TTL), clock=clock)
    await store.close()
    results = await asyncio.gather(
        *(submit(service, f"c{n}", {"plugin": "desk"}) for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, StoreClosedError) for result in results), results


async def test_changes_made_while_the_store_is_busy_share_the_transaction_that_follows(
    store: StateStore, clock: Clock
) -> None:
    service = CommandService(store, CommandBook(ttl_ms=TTL), clock=clock)
    batches: list[list[str]] = []
    service.subscribe(lambda records: batches.append([r.command_id for r in records]))
    gate = threading.Event()
    busy = asyncio.ensure_future(store.write(lambda conn: gate.wait(5)))
    submits = []
    for n in range(3):
        # Separate loop passes: the first hands its commit call to the busy owner thread,
        # which seals the batch only when it starts it, with the later two in it.
        submits.append(asyncio.ensure_future(submit(service, f"c{n}", {"plugin": "desk"})))
        await asyncio.sleep(0.02)
    gate.set()
    await asyncio.gather(busy, *submits)
    assert batches == [["c0", "c1", "c2"]]


async def test_a_caller_that_gives_up_leaves_the_commit_to_the_others(
    db: Path, store: StateStore, clock: Clock
) -> None:
    service = CommandService(store, CommandBook(ttl_ms=TTL), clock=clock)
    gate = threading.Event()
    busy = asyncio.ensure_future(store.write(lambda conn: gate.wait(5)))
    leaving = asyncio.ensure_future(submit(service, "gone", {"plugin": "desk"}))
    staying = asyncio.ensure_future(submit(service, "kept", {"plugin": "desk"}))
    await asyncio.sleep(0.02)
    leaving.cancel()
    gate.set()
    assert await staying is Outcome.QUEUED
    await busy
    assert leaving.cancelled()
    assert stored_states(db) == {"gone": "queued", "kept": "queued"}
