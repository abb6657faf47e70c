"""The presence service without sockets: coalesced announcements on a clock the test moves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson

from clawgate.gateway.broadcaster import Broadcaster
from clawgate.gateway.presence import PresenceService
from clawgate.protocol.connect import ClientInfo
from clawgate.protocol.events import EventGate, EventSpec
from clawgate.protocol.frames import PreparedEvent
from clawgate.protocol.limits import PRESENCE_FLUSH_INTERVAL_MS
from clawgate.protocol.presence import PresenceTable
from clawgate.protocol.scopes import Role

SELF = {"ts": 0, "mode": "gateway", "reason": "self"}


@dataclass
class FakeConnection:
    """What the broadcaster and presence read from a connection, recording its events."""

    conn_id: str
    client: ClientInfo | None
    role: Role = Role.OPERATOR
    scopes: tuple[str, ...] = ("operator.read",)
    protocol: int = 4
    device_id: str | None = None
    remote_ip: str = "127.0.0.1"
    connected_at_ms: int = 0
    presence_key: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)

    def send_event(self, prepared: PreparedEvent) -> None:
        self.events.append(orjson.loads(prepared.with_seq(len(self.events) + 1)))


class Clock:
    """A monotonic millisecond clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


@dataclass
class World:
    """A presence service over a real broadcaster and table, with a hand-moved clock."""

    clock: Clock = field(default_factory=Clock)
    broadcaster: Broadcaster[FakeConnection] = field(
        default_factory=lambda: Broadcaster(
            {"presence": EventSpec("presence", None, EventGate.OPERATORS)}
        )
    )
    table: PresenceTable = field(default_factory=lambda: PresenceTable(SELF, expiry_ms=1000))
    service: PresenceService = field(init=False)

    def __post_init__(self) -> None:
        self.service = PresenceService(
            self.table,
            self.broadcaster,
            lambda: {"presence": self.table.version, "health": 0},
            clock=self.clock,
        )

    def connect(
        self, name: str, mode: str = "ui", instance_id: str | None = None
    ) -> FakeConnection:
        """Welcome and join one connection, as `ConnectionTable` does."""
        client = ClientInfo(
            id="test", version="1", platform="linux", mode=mode, instanceId=instance_id
        )
        connection = FakeConnection(name, client)
        self.broadcaster.add(connection)
        self.service.welcomed(connection.conn_id)
        self.service.joined(connection)
        return connection

    def leave(self, connection: FakeConnection) -> None:
        """Forget one connection, as `ConnectionTable` does."""
        self.broadcaster.remove(connection)
        self.service.left(connection)


async def settle() -> None:
    """Let the announcer run what it can do without the clock moving."""
    for _ in range(5):
        await asyncio.sleep(0)


async def drained(service: PresenceService) -> None:
    """Wait until the announcer has sent what was pending."""
    async with asyncio.timeout(5):
        while service.pending:
            await asyncio.sleep(0.01)


def presence_events(connection: FakeConnection) -> list[dict[str, Any]]:
    return [event for event in connection.events if event["event"] == "presence"]


def instance_ids(event: dict[str, Any]) -> list[str]:
    return [entry.get("instanceId", entry["mode"]) for entry in event["payload"]["presence"]]


async def test_a_burst_of_joins_is_one_announcement_now_and_one_at_the_interval() -> None:
    world = World()
    watcher = world.connect("watcher", mode="cli")
    announcer = asyncio.create_task(world.service.run())
    try:
        for number in range(50):
            world.connect(f"c{number}", instance_id=f"i{number}")
        await settle()
        assert len(presence_events(watcher)) == 1  # the first join, at once
        world.clock.now += PRESENCE_FLUSH_INTERVAL_MS
        await drained(world.service)
        first, last = presence_events(watcher)
        assert instance_ids(first) == ["gateway", "i0"]
        assert instance_ids(last) == ["gateway", *(f"i{n}" for n in range(50))]
        assert last["stateVersion"]["presence"] == world.table.version == 50
        assert first["seq"] < last["seq"]
    finally:
        announcer.cancel()
        await asyncio.gather(announcer, return_exceptions=True)


async def test_an_announcement_carries_the_latest_list_after_joins_and_leaves() -> None:
    world = World()
    watcher = world.connect("watcher", mode="cli")
    announcer = asyncio.create_task(world.service.run())
    try:
        kept = world.connect("kept", instance_id="kept")
        gone = world.connect("gone", instance_id="gone")
        world.leave(gone)
        world.clock.now += PRESENCE_FLUSH_INTERVAL_MS
        await drained(world.service)
        events = presence_events(watcher)
        assert len(events) == 2
        assert instance_ids(events[-1]) == ["gateway", "kept"]
        assert events[-1]["stateVersion"]["presence"] == 3
        assert presence_events(kept)[-1] == {**events[-1], "seq": presence_events(kept)[-1]["seq"]}
    finally:
        announcer.cancel()
        await asyncio.gather(announcer, return_exceptions=True)


def test_a_connection_whose_snapshot_is_current_is_skipped_by_the_pending_announcement() -> None:
    world = World()
    world.connect("first", instance_id="first")  # announced at once
    world.connect("second", instance_id="second")  # pending
    quiet = world.connect("quiet", mode="cli")  # snapshot already shows "second"
    world.clock.now += PRESENCE_FLUSH_INTERVAL_MS
    world.service.announce()
    assert presence_events(quiet) == []


def test_a_key_held_twice_stays_until_its_last_holder_leaves() -> None:
    world = World()
    one = world.connect("one", instance_id="shared")
    two = world.connect("two", instance_id="shared")
    world.leave(one)
    assert [e.get("instanceId") for e in world.service.entries()] == [None, "shared"]
    world.leave(two)
    assert world.service.entries() == [SELF]


def test_quiet_modes_change_nothing() -> None:
    world = World()
    world.connect("cli", mode="cli")
    world.connect("probe", mode="probe")
    assert world.table.version == 0
    assert world.service.pending is False


async def test_the_announcer_stops_when_cancelled() -> None:
    world = World()
    announcer = asyncio.create_task(world.service.run())
    world.connect("a", instance_id="a")
    world.connect("b", instance_id="b")  # pending: the announcer sleeps towards it
    await settle()
    announcer.cancel()
    await asyncio.gather(announcer, return_exceptions=True)
    assert announcer.cancelled()
