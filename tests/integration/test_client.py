"""Client SDK against the real gateway.

`tests/integration/client/` drives it against a scripted fake, one module per SDK module.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.conftest import GatewayFactory, RunningGateway

from clawgate.client import (
    Backoff,
    ClientState,
    Event,
    GatewayCallError,
    GatewayClient,
    GatewayConnectionError,
    GatewayHandshakeError,
)
from clawgate.gateway.server import GatewayServer
from clawgate.protocol.auth import AuthMode, SharedSecretAuth
from clawgate.protocol.limits import Limits
from tests.integration.client.helpers import fast_backoff

# -- against the real gateway (tests/conftest.py: token auth, 200 ms tick) --------------------


async def test_gateway_connect_with_token_negotiates_protocol_4(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url, token=gateway.token) as client:
        assert client.connected
        assert client.protocol == 4
        assert client.hello is not None
        assert client.hello["type"] == "hello-ok"
        assert client.hello["server"]["bootId"] == gateway.server.boot_id


async def test_gateway_negotiates_protocol_3_when_asked(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url, token=gateway.token, max_protocol=3) as client:
        assert client.protocol == 3
        assert client.hello is not None
        assert "bootId" not in client.hello["server"]


async def test_gateway_wrong_token_is_a_handshake_error(gateway: RunningGateway) -> None:
    client = GatewayClient(gateway.url, token="not-the-token")

    with pytest.raises(GatewayHandshakeError) as info:
        await client.connect()

    assert info.value.code == "INVALID_REQUEST"
    assert info.value.detail_code == "AUTH_TOKEN_MISMATCH"
    assert info.value.close_code == 1008
    assert "not-the-token" not in str(info.value)
    assert client.close_code == 1008


async def test_gateway_protocol_mismatch_closes_1002(gateway: RunningGateway) -> None:
    client = GatewayClient(gateway.url, token=gateway.token, min_protocol=5, max_protocol=9)

    with pytest.raises(GatewayHandshakeError) as info:
        await client.connect()

    assert info.value.detail_code == "PROTOCOL_MISMATCH"
    assert info.value.close_code == 1002


async def test_gateway_health_call_returns_summary(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url, token=gateway.token) as client:
        health = await client.call("health")

    assert isinstance(health, dict)
    assert health["ok"] is True


async def test_gateway_unknown_method_is_invalid_request(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url, token=gateway.token) as client:
        with pytest.raises(GatewayCallError) as info:
            await client.call("no.such.method")
        assert client.connected  # the socket stays open

    assert info.value.code == "INVALID_REQUEST"
    assert "no.such.method" in info.value.message


async def test_gateway_non_json_frame_is_answered_and_ignored(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url, token=gateway.token) as client:
        await client.send_raw("this is not json")  # answered with id "invalid"
        assert (await client.call("health"))["ok"] is True


async def test_gateway_ticks_arrive_with_consecutive_seq(gateway: RunningGateway) -> None:
    client = GatewayClient(gateway.url, token=gateway.token, client_mode="cli", client_id="cli")
    stream = client.events()  # created first, so it sees the connection's first event
    async with client:
        seen: list[Event] = []
        async with asyncio.timeout(5):
            async for ev in stream:
                seen.append(ev)
                if sum(ev.event == "tick" for ev in seen) == 3:
                    break

    assert [ev.seq for ev in seen] == list(range(1, len(seen) + 1))
    ticks = [ev for ev in seen if ev.event == "tick"]
    assert all(isinstance(ev.payload["ts"], int) for ev in ticks)


async def test_gateway_presence_event_when_another_client_connects(
    gateway: RunningGateway,
) -> None:
    async with GatewayClient(gateway.url, token=gateway.token) as watcher:
        waiter = asyncio.create_task(
            watcher.next_event(
                "presence",
                predicate=lambda ev: any(
                    entry.get("instanceId") == "second" for entry in ev.payload["presence"]
                ),
            )
        )
        await asyncio.sleep(0)
        async with GatewayClient(gateway.url, token=gateway.token, instance_id="second"):
            presence = await waiter

    assert presence.seq is not None
    assert presence.state_version is not None and presence.state_version["presence"] >= 1


async def test_gateway_pending_call_fails_when_the_server_closes(
    gateway_factory: GatewayFactory,
) -> None:
    # An oversized request makes the server close with 1009 instead of answering it.
    small = await gateway_factory(limits=Limits(tick_interval_ms=200, max_payload=128 * 1024))
    async with GatewayClient(small.url, token=small.token) as client:
        with pytest.raises(GatewayConnectionError) as info:
            await client.call("health", {"probe": "x" * 200_000}, timeout=5)

        assert info.value.close_code == 1009
        assert client.state is ClientState.CLOSED
        assert client.close_code == 1009


async def test_gateway_binary_frame_closes_1003(gateway: RunningGateway) -> None:
    async with GatewayClient(gateway.url, token=gateway.token) as client:
        waiter = asyncio.create_task(client.call("health", timeout=5))
        await client.send_raw(b"\x00")
        with contextlib.suppress(GatewayConnectionError):
            await waiter  # may be answered before the close, or fail with it
        async with asyncio.timeout(2):
            while client.connected:
                await asyncio.sleep(0.01)

        assert client.close_code == 1003


async def test_gateway_restart_is_survived_by_reconnect(gateway: RunningGateway) -> None:
    hellos: list[dict[str, Any]] = []
    reconnected = asyncio.Event()

    def on_reconnect(hello: dict[str, Any]) -> None:
        hellos.append(hello)
        reconnected.set()

    client = GatewayClient(
        gateway.url,
        token=gateway.token,
        reconnect=True,
        backoff=fast_backoff(),
        on_reconnect=on_reconnect,
    )
    async with client:
        old_boot = gateway.server.boot_id
        stream = client.events()
        await gateway.restart()
        await asyncio.wait_for(reconnected.wait(), 10)

        assert hellos[0]["server"]["bootId"] == gateway.server.boot_id != old_boot
        assert (await client.call("health"))["ok"] is True
        seen: list[Event] = []
        async with asyncio.timeout(5):
            async for ev in stream:  # a SequenceGapError here would fail the test
                seen.append(ev)
                names = [e.event for e in seen]
                if "shutdown" in names and len(seen) - names.index("shutdown") == 3:
                    break

    at = [ev.event for ev in seen].index("shutdown")
    assert seen[at].payload == {"reason": "gateway restarting", "restartExpectedMs": 1000}
    assert [ev.seq for ev in seen[at + 1 :]] == [1, 2]  # the new connection starts again at 1
    assert client.close_code == 1000  # set by our own close() at the end


async def test_gateway_call_during_restart_waits_for_reconnect(gateway: RunningGateway) -> None:
    # A fixed 0.3 s reconnect delay keeps the client visibly disconnected for a while.
    backoff = Backoff(0.3, 0.3, rand=max)
    client = GatewayClient(gateway.url, token=gateway.token, reconnect=True, backoff=backoff)
    async with client:
        restart = asyncio.create_task(gateway.restart())
        async with asyncio.timeout(5):
            while client.state is not ClientState.RECONNECTING:
                await asyncio.sleep(0.01)

        health = await client.call("health", timeout=10)
        await restart

    assert health["ok"] is True


async def test_gateway_no_reconnect_storm_after_token_change(gateway: RunningGateway) -> None:
    client = GatewayClient(gateway.url, token=gateway.token, reconnect=True, backoff=fast_backoff())
    async with client:
        port = gateway.server.port
        await gateway.server.stop()
        auth = SharedSecretAuth(AuthMode.TOKEN, "a-different-token")
        gateway.server = GatewayServer(replace(gateway.server.settings, port=port, auth=auth))
        await gateway.server.start()
        async with asyncio.timeout(10):
            while client.state is not ClientState.CLOSED:
                await asyncio.sleep(0.02)

        assert client.close_code == 1008
        with pytest.raises(GatewayConnectionError, match="reconnect gave up"):
            await client.call("health", timeout=1)
