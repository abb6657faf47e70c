"""Request correlation on one plugin connection, without a socket (spec §2.8)."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from clawgate.plugin import NotConnectedError, PluginError
from clawgate.plugin._requests import PendingRequests
from clawgate.protocol.ipc.frames import IpcError, Response


class Wire:
    """Collect the frames a request sends."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.sent = asyncio.Event()

    async def send(self, data: bytes) -> None:
        self.ids.append(orjson.loads(data)["id"])
        self.sent.set()


async def test_reply_settles_the_request_with_its_payload() -> None:
    pending, wire = PendingRequests(), Wire()
    call = asyncio.create_task(pending.request(wire.send, "status", {}, 5))
    await wire.sent.wait()
    assert pending.resolve(wire.ids[0], Response(wire.ids[0], True, {"a": 1}))
    assert await call == {"a": 1}


async def test_error_reply_raises_plugin_error() -> None:
    pending, wire = PendingRequests(), Wire()
    call = asyncio.create_task(pending.request(wire.send, "status", {}, 5))
    await wire.sent.wait()
    error = IpcError("NOT_FOUND", "gone")
    assert pending.resolve(wire.ids[0], Response(wire.ids[0], False, {}, error))
    with pytest.raises(PluginError) as info:
        await call
    assert type(info.value) is PluginError and info.value.code == "NOT_FOUND"


async def test_late_reply_after_timeout_settles_nothing() -> None:
    pending, wire = PendingRequests(), Wire()
    with pytest.raises(PluginError) as info:
        await pending.request(wire.send, "slow", {}, 0.01)
    assert (info.value.code, info.value.retryable) == ("TIMEOUT", True)
    assert not pending.resolve(wire.ids[0], Response(wire.ids[0], True, {}))


async def test_fail_all_fails_every_pending_request_not_connected() -> None:
    pending, wire = PendingRequests(), Wire()
    calls = [asyncio.create_task(pending.request(wire.send, "m", {}, 5)) for _ in range(2)]
    while len(wire.ids) < 2:
        await asyncio.sleep(0)
    pending.fail_all()
    for call in calls:
        with pytest.raises(NotConnectedError):
            await call
    assert not pending.resolve(wire.ids[0], Response(wire.ids[0], True, {}))
