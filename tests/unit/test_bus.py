"""The in-process bus: ordered, isolated, never blocking the publisher."""

from __future__ import annotations

import asyncio

from clawgate.bus import Bus


def test_handlers_see_every_message_in_order_and_a_failing_one_is_isolated() -> None:
    bus: Bus[int] = Bus()
    seen: list[tuple[str, int]] = []

    def broken(message: int) -> None:
        raise RuntimeError("boom")

    bus.add_handler(lambda m: seen.append(("a", m)))
    bus.add_handler(broken)
    remove = bus.add_handler(lambda m: seen.append(("b", m)))
    bus.publish(1)
    remove()
    bus.publish(2)
    assert seen == [("a", 1), ("b", 1), ("a", 2)]


async def test_subscription_is_ordered_and_filtered() -> None:
    bus: Bus[int] = Bus()
    evens = bus.subscribe(accept=lambda m: m % 2 == 0)
    for number in range(6):
        bus.publish(number)
    evens.close()
    assert [m async for m in evens] == [0, 2, 4]


async def test_full_subscription_ends_marked_overflowed_without_blocking() -> None:
    bus: Bus[int] = Bus()
    slow = bus.subscribe(maxsize=3)
    fast = bus.subscribe(maxsize=100)
    for number in range(10):
        bus.publish(number)  # returns at once although nobody reads `slow`
    assert slow.overflowed and slow.closed
    assert [m async for m in slow] == [0, 1, 2]
    fast.close()
    assert [m async for m in fast] == list(range(10))


async def test_waiting_consumer_wakes_on_publish() -> None:
    bus: Bus[str] = Bus()
    subscription = bus.subscribe()
    reader = asyncio.create_task(anext(subscription))
    await asyncio.sleep(0)
    bus.publish("hi")
    assert await asyncio.wait_for(reader, 1) == "hi"
