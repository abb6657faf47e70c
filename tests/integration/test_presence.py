"""Presence over real sockets: bursts of joins and leaves are announced coalesced and exact."""

from __future__ import annotations

import asyncio
from typing import Any

from clawgate.client import Event
from tests.conftest import RunningGateway
from tests.integration.conftest import Peer, PeerFactory

# Below the 32 unauthenticated sockets allowed per address, so all can handshake at once.
CROWD = 30


def instance_ids(event: Event) -> set[str]:
    return {entry["instanceId"] for entry in event.payload["presence"] if "instanceId" in entry}


async def announced_until(watcher: Peer, expected: set[str]) -> list[Event]:
    """Return the presence events the watcher sees until one lists exactly `expected`."""
    seen: list[Event] = []
    async with asyncio.timeout(10):
        while not seen or instance_ids(seen[-1]) != expected:
            seen.append(await watcher.next_event("presence"))
    return seen


def presence_versions(events: list[Event]) -> list[int]:
    versions: list[int] = []
    for event in events:
        assert event.state_version is not None
        versions.append(event.state_version["presence"])
    return versions


async def crowd(gateway: RunningGateway, client_factory: PeerFactory) -> list[Peer]:
    return list(
        await asyncio.gather(
            *(client_factory(gateway, instance_id=f"inst-{n}") for n in range(CROWD))
        )
    )


async def test_a_burst_of_joins_is_announced_in_fewer_events_than_joins(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    watcher = await client_factory(gateway, client_id="cli", client_mode="cli")
    snapshot: dict[str, Any] = watcher.hello["snapshot"]
    await crowd(gateway, client_factory)
    events = await announced_until(watcher, {f"inst-{n}" for n in range(CROWD)})
    versions = presence_versions(events)
    assert len(events) < CROWD
    assert [snapshot["stateVersion"]["presence"], *versions] == sorted(
        {snapshot["stateVersion"]["presence"], *versions}
    ), "each announcement is newer than the snapshot and than the one before"
    assert events[-1].payload["presence"] == gateway.server.presence.entries()
    assert versions[-1] == gateway.server.presence.version


async def test_a_burst_of_leaves_ends_with_the_exact_list(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    watcher = await client_factory(gateway, client_id="cli", client_mode="cli")
    peers = await crowd(gateway, client_factory)
    await announced_until(watcher, {f"inst-{n}" for n in range(CROWD)})
    await asyncio.gather(*(peer.client.close() for peer in peers))
    events = await announced_until(watcher, set())
    versions = presence_versions(events)
    assert versions == sorted(set(versions))
    assert [entry["mode"] for entry in events[-1].payload["presence"]] == ["gateway"]
    assert gateway.server.presence.pending is False


async def test_a_late_joiner_never_gets_an_announcement_older_than_its_snapshot(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    first = await client_factory(gateway, instance_id="first")
    await first.next_event("presence")
    await client_factory(gateway, instance_id="second")  # within the interval: pending
    late = await client_factory(gateway, client_id="cli", client_mode="cli")
    snapshot_version = late.hello["snapshot"]["stateVersion"]["presence"]
    third = await client_factory(gateway, instance_id="third")
    del third
    events = await announced_until(late, {"first", "second", "third"})
    assert all(version > snapshot_version for version in presence_versions(events))
