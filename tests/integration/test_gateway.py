"""The gateway over real sockets: hello-ok, events, seq, idempotency, shutdown, HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from clawgate.client import GatewayClient, GatewayConnectionError
from clawgate.gateway.methods import build_registry
from clawgate.protocol.shapes import HealthSummary, HelloOk3, HelloOk4, StatusSummary
from tests.conftest import RunningGateway
from tests.integration.conftest import PeerFactory


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session for the ops endpoints (the SDK speaks only the WebSocket protocol)."""
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def test_hello_ok_v4_matches_its_schema_and_lists_the_registry(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await client_factory(gateway)
    model = HelloOk4.model_validate(peer.hello)
    registry = build_registry()
    assert model.features.methods == registry.method_names()
    assert model.features.events == registry.event_names()
    assert model.features.capabilities == []
    assert model.auth.role == "operator" and model.auth.scopes == ["operator.admin"]
    assert model.policy.maxPayload == 25 * 1024 * 1024
    assert model.snapshot.authMode == "token"
    assert model.snapshot.stateDir == str(gateway.home)
    assert model.server.bootId == gateway.server.boot_id


async def test_hello_ok_v3_has_no_auth_block_and_no_boot_id(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    hello = (await client_factory(gateway, max_protocol=3)).hello
    model = HelloOk3.model_validate(hello)
    assert model.protocol == 3
    assert "auth" not in hello and "bootId" not in hello["server"]


async def test_snapshot_hides_paths_from_non_admin(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await client_factory(gateway, scopes=["operator.read"])
    snapshot = peer.hello["snapshot"]
    assert "stateDir" not in snapshot and "configPath" not in snapshot


async def test_broadcast_seq_starts_at_one_per_connection_and_has_no_gaps(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    first = await client_factory(gateway)
    await first.next_event("tick")
    second = await client_factory(gateway)
    seqs = []
    async with asyncio.timeout(5):
        async for event in second.events:
            seqs.append(event.seq)
            if len(seqs) == 4:
                break
    assert seqs == [1, 2, 3, 4]


async def test_presence_event_on_connect_and_disconnect(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    watcher = await client_factory(gateway)
    version = watcher.hello["snapshot"]["stateVersion"]["presence"]
    await watcher.next_event("presence")  # the watcher's own arrival
    other = await client_factory(
        gateway, client_version="2", platform="x", client_mode="ui", instance_id="inst-9"
    )
    joined = await watcher.next_event("presence")
    assert any(e.get("instanceId") == "inst-9" for e in joined.payload["presence"])
    assert joined.state_version is not None
    assert joined.state_version["presence"] > version
    await other.client.close()
    left = await watcher.next_event("presence")
    assert all(e.get("instanceId") != "inst-9" for e in left.payload["presence"])


async def test_cli_mode_is_not_in_presence(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    await client_factory(
        gateway, client_id="cli", client_version="1", platform="x", client_mode="cli"
    )
    assert [e["mode"] for e in gateway.server.presence.entries()] == ["gateway"]


async def test_health_probe_refreshes_and_broadcasts(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await client_factory(gateway)
    before = peer.hello["snapshot"]["stateVersion"]["health"]
    answer = await peer.client.call("health", {"probe": True})
    event = await peer.next_event("health")
    HealthSummary.model_validate(event.payload)
    assert event.state_version is not None
    assert event.state_version["health"] == before + 1
    assert answer["ts"] == event.payload["ts"]


async def test_scopeless_operator_can_still_call_health(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await client_factory(gateway, scopes=[])
    assert (await peer.client.request("health")).ok is True


async def test_status_shows_pid_only_to_admin(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    admin = await client_factory(gateway)
    reader = await client_factory(gateway, scopes=["operator.read"])
    full = StatusSummary.model_validate(await admin.client.call("status"))
    partial = StatusSummary.model_validate(await reader.client.call("status"))
    assert full.pid is not None and full.processMemory is not None
    assert partial.pid is None and partial.processMemory is None


async def test_system_event_with_same_key_runs_once(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    client = (await client_factory(gateway)).client
    params = {"text": "door opened", "idempotencyKey": "evt-1"}
    # Both requests are on the wire before either answer is read.
    first, second = await asyncio.gather(
        client.request("system-event", params), client.request("system-event", params)
    )
    assert first.payload == {"ok": True}
    assert second.payload == {"ok": True}
    queued = (await client.call("status"))["queuedSystemEvents"]
    assert [event["text"] for event in queued] == ["door opened"]


async def test_system_event_dedupe_is_gateway_wide(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    first = await client_factory(gateway)
    second = await client_factory(gateway)
    params = {"text": "once", "idempotencyKey": "shared"}
    await first.client.request("system-event", params)
    await second.client.request("system-event", params)
    assert [event["text"] for event in gateway.server.system_events.peek()] == ["once"]


async def test_system_event_with_instance_upserts_presence(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await client_factory(gateway)
    await peer.next_event("presence")
    await peer.client.request("system-event", {"text": "hi", "instanceId": "mac-1", "mode": "ui"})
    event = await peer.next_event("presence")
    entry = next(e for e in event.payload["presence"] if e.get("instanceId") == "mac-1")
    assert entry["text"] == "hi" and entry["mode"] == "ui"


async def test_heartbeats_switch_and_last_heartbeat(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    peer = await client_factory(gateway)
    assert (await peer.client.request("last-heartbeat")).payload is None
    assert (await peer.client.request("set-heartbeats", {"enabled": False})).payload == {
        "ok": True,
        "enabled": False,
    }
    assert gateway.server.heartbeats.enabled is False
    await gateway.server.heartbeats.beat()
    event = await peer.next_event("heartbeat")
    assert (await peer.client.request("last-heartbeat")).payload == event.payload


async def test_logs_tail_reads_the_log_file(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    log_file = gateway.home / "logs" / "gateway.log"
    log_file.write_text("first\nsecond\n")
    peer = await client_factory(gateway)
    payload = (await peer.client.request("logs.tail", {"limit": 1})).payload
    assert payload["lines"] == ["second"] and payload["file"] == "gateway.log"


async def test_shutdown_event_then_close_1012(
    gateway: RunningGateway, client_factory: PeerFactory
) -> None:
    v4 = await client_factory(gateway)
    v3 = await client_factory(gateway, max_protocol=3)
    stopping = asyncio.create_task(gateway.server.stop())
    event4 = await v4.next_event("shutdown")
    event3 = await v3.next_event("shutdown")
    assert event4.payload == {"reason": "gateway stopping", "restartExpectedMs": None}
    assert event3.payload == {"reason": "gateway stopping"}
    assert await v4.closed() == 1012
    assert await v3.closed() == 1012
    await stopping


async def test_upgrades_are_refused_while_stopping(gateway: RunningGateway) -> None:
    gateway.server.connections.stopping = True
    client = GatewayClient(gateway.url, token=gateway.token)
    with pytest.raises(GatewayConnectionError) as caught:
        await client.connect()
    refusal = caught.value.__cause__
    assert isinstance(refusal, aiohttp.WSServerHandshakeError)
    assert refusal.status == 503
    gateway.server.connections.stopping = False


async def test_http_ops_endpoints(
    gateway: RunningGateway, client_factory: PeerFactory, session: aiohttp.ClientSession
) -> None:
    async with session.get(f"{gateway.http_url}/healthz") as response:
        assert await response.json() == {"ok": True, "status": "live"}
    async with session.get(f"{gateway.http_url}/readyz") as response:
        body = await response.json()
        assert response.status == 200 and body["ready"] is True and body["failing"] == []
    client = (await client_factory(gateway)).client
    await client.request("nope")
    await client.request("health")
    async with session.get(f"{gateway.http_url}/metrics") as response:
        text = await response.text()
    assert "clawgate_connections 1.0" in text
    assert 'clawgate_errors_total{code="INVALID_REQUEST"} 1.0' in text
    assert "clawgate_method_latency_seconds_bucket" in text
    assert "clawgate_frames_in_total" in text


async def test_readyz_is_503_while_not_ready(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    gateway.server.connections.ready = False
    async with session.get(f"{gateway.http_url}/readyz") as response:
        assert response.status == 503
        assert (await response.json())["ready"] is False


async def test_schema_is_served(gateway: RunningGateway, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{gateway.http_url}/protocol.schema.json") as response:
        schema = await response.json()
    assert "health.params" in schema["definitions"]
