"""The owner thread: order, results, errors and stopping."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from clawgate.store import StoreClosedError
from clawgate.store._thread import OwnerThread


def alive(name: str) -> bool:
    return any(t.name == name for t in threading.enumerate())


async def test_calls_run_in_order_on_the_thread() -> None:
    owner = OwnerThread("test-owner-order")
    owner.start()
    seen: list[int] = []

    def call(i: int) -> int:
        seen.append(i)
        return threading.get_ident()

    idents = await asyncio.gather(*(owner.submit(lambda i=i: call(i)) for i in range(100)))
    await owner.stop()
    assert seen == list(range(100))
    assert set(idents) == {idents[0]} and idents[0] != threading.get_ident()


async def test_an_exception_reaches_the_caller_and_the_thread_goes_on() -> None:
    owner = OwnerThread("test-owner-error")
    owner.start()

    def fail() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        await owner.submit(fail)
    assert await owner.submit(lambda: 42) == 42
    await owner.stop()


async def test_stop_runs_queued_calls_then_final_and_ends_the_thread() -> None:
    owner = OwnerThread("test-owner-stop")
    owner.start()
    order: list[str] = []
    queued = owner.submit(lambda: order.append("call"))
    await asyncio.gather(owner.stop(lambda: order.append("final")), owner.stop())
    await queued
    assert order == ["call", "final"]
    assert not alive("test-owner-stop")
    with pytest.raises(StoreClosedError):
        owner.submit(lambda: None)
    await owner.stop()  # idempotent


async def test_stop_of_a_thread_never_started_returns() -> None:
    owner = OwnerThread("test-owner-never")
    await owner.stop()
    with pytest.raises(StoreClosedError):
        owner.submit(lambda: None)


async def test_a_call_that_kills_the_thread_fails_instead_of_hanging() -> None:
    owner = OwnerThread("test-owner-exit")
    owner.start()
    with pytest.raises(StoreClosedError):
        await owner.submit(lambda: sys.exit(3))
    await owner.stop()
    assert not alive("test-owner-exit")
    with pytest.raises(StoreClosedError):
        owner.submit(lambda: None)
