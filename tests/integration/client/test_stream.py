"""Client events and seq gaps (_stream.py) against the scripted fake gateway."""

from __future__ import annotations

import asyncio

import pytest

from clawgate.client import Event, GatewayClient, GatewayTimeoutError, SequenceGapError
from tests.integration.client.helpers import FakeGateway, event


async def test_events_are_delivered_to_every_iterator(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        first, second = client.events(), client.events()
        await fake.ws.send_json(event("tick", {"ts": 1}, seq=1))

        one = await asyncio.wait_for(anext(first), 2)
        two = await asyncio.wait_for(anext(second), 2)

    assert one == two == Event("tick", {"ts": 1}, 1, None)


async def test_seq_gap_is_raised_once_from_the_iterator(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        stream = client.events()
        for seq in (1, 2, 5):
            await fake.ws.send_json(event("tick", {}, seq=seq))

        seen = [(await anext(stream)).seq, (await anext(stream)).seq]
        with pytest.raises(SequenceGapError) as info:
            await asyncio.wait_for(anext(stream), 2)
        after = await asyncio.wait_for(anext(stream), 2)

    assert seen == [1, 2]
    assert (info.value.expected, info.value.got) == (3, 5)
    assert after.seq == 5


async def test_seq_gap_goes_to_on_gap_when_given(fake: FakeGateway) -> None:
    gaps: list[tuple[int, int]] = []
    async with GatewayClient(fake.url, on_gap=lambda e, g: gaps.append((e, g))) as client:
        stream = client.events()
        for seq in (1, 3):
            await fake.ws.send_json(event("tick", {}, seq=seq))
        seqs = [(await anext(stream)).seq, (await anext(stream)).seq]

    assert seqs == [1, 3]
    assert gaps == [(2, 3)]


async def test_events_iteration_ends_on_close(fake: FakeGateway) -> None:
    client = GatewayClient(fake.url)
    await client.connect()
    stream = client.events()

    async def drain() -> list[Event]:
        return [ev async for ev in stream]

    drainer = asyncio.create_task(drain())
    await fake.ws.send_json(event("tick", {}, seq=1))
    await asyncio.sleep(0.05)
    await client.close()

    assert [ev.event for ev in await asyncio.wait_for(drainer, 2)] == ["tick"]


async def test_next_event_matches_name_and_predicate(fake: FakeGateway) -> None:
    async with GatewayClient(fake.url) as client:
        waiter = asyncio.create_task(
            client.next_event("presence", predicate=lambda ev: ev.payload["n"] == 2)
        )
        await asyncio.sleep(0.05)
        await fake.ws.send_json(event("tick", {}, seq=1))
        await fake.ws.send_json(event("presence", {"n": 1}, seq=2))
        await fake.ws.send_json(event("presence", {"n": 2}, seq=3))

        assert (await asyncio.wait_for(waiter, 2)).seq == 3
        with pytest.raises(GatewayTimeoutError):
            await client.next_event("tick", timeout=0.05)
