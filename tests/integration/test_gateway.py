"""The gateway over real sockets: hello-ok, events, seq, idempotency, shutdown, HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from clawgate.gateway.methods import build_registry
from clawgate.protocol.shapes import HealthSummary, HelloOk3, HelloOk4, StatusSummary
from tests.conftest import RunningGateway
from tests.wire import RawPeer, open_peer, request


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def authenticated(
    session: aiohttp.ClientSession, gateway: RunningGateway, **overrides: object
) -> tuple[RawPeer, dict[str, object]]:
    peer = await open_peer(session, gateway.url)
    hello = await peer.authenticate(gateway.token, **overrides)
    return peer, hello


async def next_event(peer: RawPeer, name: str, timeout: float = 5.0) -> dict[str, object]:
    async with asyncio.timeout(timeout):
        while True:
            frame = await peer.next_frame(timeout)
            assert frame is not None, f"closed while waiting for {name}"
            if frame["type"] == "event" and frame["event"] == name:
                return frame


async def test_hello_ok_v4_matches_its_schema_and_lists_the_registry(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    _, hello = await authenticated(session, gateway)
    model = HelloOk4.model_validate(hello)
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
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    _, hello = await authenticated(session, gateway, maxProtocol=3)
    model = HelloOk3.model_validate(hello)
    assert model.protocol == 3
    assert "auth" not in hello and "bootId" not in hello["server"]  # type: ignore[operator]


async def test_snapshot_hides_paths_from_non_admin(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    _, hello = await authenticated(session, gateway, scopes=["operator.read"])
    snapshot = hello["snapshot"]
    assert "stateDir" not in snapshot and "configPath" not in snapshot  # type: ignore[operator]


async def test_broadcast_seq_starts_at_one_per_connection_and_has_no_gaps(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    first, _ = await authenticated(session, gateway)
    await next_event(first, "tick")
    second, _ = await authenticated(session, gateway)
    seqs = []
    async with asyncio.timeout(5):
        while len(seqs) < 4:
            frame = await second.next_frame()
            assert frame is not None
            if frame["type"] == "event":
                seqs.append(frame["seq"])
    assert seqs == [1, 2, 3, 4]


async def test_presence_event_on_connect_and_disconnect(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    watcher, hello = await authenticated(session, gateway)
    version = hello["snapshot"]["stateVersion"]["presence"]  # type: ignore[index]
    await next_event(watcher, "presence")  # the watcher's own arrival
    other, _ = await authenticated(
        session,
        gateway,
        client={
            "id": "test",
            "version": "2",
            "platform": "x",
            "mode": "ui",
            "instanceId": "inst-9",
        },
    )
    joined = await next_event(watcher, "presence")
    assert any(e.get("instanceId") == "inst-9" for e in joined["payload"]["presence"])  # type: ignore[index,union-attr]
    assert joined["stateVersion"]["presence"] > version  # type: ignore[index]
    await other.ws.close()
    left = await next_event(watcher, "presence")
    assert all(e.get("instanceId") != "inst-9" for e in left["payload"]["presence"])  # type: ignore[index,union-attr]


async def test_cli_mode_is_not_in_presence(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    await authenticated(
        session, gateway, client={"id": "cli", "version": "1", "platform": "x", "mode": "cli"}
    )
    assert [e["mode"] for e in gateway.server.presence.entries()] == ["gateway"]


async def test_health_probe_refreshes_and_broadcasts(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    peer, hello = await authenticated(session, gateway)
    before = hello["snapshot"]["stateVersion"]["health"]  # type: ignore[index]
    await peer.send(request("health", {"probe": True}, "h"))
    event = await next_event(peer, "health")
    HealthSummary.model_validate(event["payload"])
    assert event["stateVersion"]["health"] == before + 1  # type: ignore[index]
    answer = await peer.response("h")
    assert answer["payload"]["ts"] == event["payload"]["ts"]  # type: ignore[index]


async def test_node_can_call_health_but_not_status(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    # Without a paired device a node is refused at the handshake; check the gate instead.
    peer, _ = await authenticated(session, gateway, scopes=[])
    await peer.send(request("health", None, "h"))
    assert (await peer.response("h"))["ok"] is True


async def test_status_shows_pid_only_to_admin(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    admin, _ = await authenticated(session, gateway)
    reader, _ = await authenticated(session, gateway, scopes=["operator.read"])
    await admin.send(request("status", None, "s"))
    full = StatusSummary.model_validate((await admin.response("s"))["payload"])
    await reader.send(request("status", None, "s"))
    partial = StatusSummary.model_validate((await reader.response("s"))["payload"])
    assert full.pid is not None and full.processMemory is not None
    assert partial.pid is None and partial.processMemory is None


async def test_system_event_with_same_key_runs_once(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    peer, _ = await authenticated(session, gateway)
    params = {"text": "door opened", "idempotencyKey": "evt-1"}
    await peer.send(request("system-event", params, "a"))
    await peer.send(request("system-event", params, "b"))
    assert (await peer.response("a"))["payload"] == {"ok": True}
    assert (await peer.response("b"))["payload"] == {"ok": True}
    await peer.send(request("status", None, "s"))
    queued = (await peer.response("s"))["payload"]["queuedSystemEvents"]
    assert [event["text"] for event in queued] == ["door opened"]


async def test_system_event_dedupe_is_gateway_wide(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    first, _ = await authenticated(session, gateway)
    second, _ = await authenticated(session, gateway)
    params = {"text": "once", "idempotencyKey": "shared"}
    await first.send(request("system-event", params, "a"))
    await first.response("a")
    await second.send(request("system-event", params, "b"))
    await second.response("b")
    assert [event["text"] for event in gateway.server.system_events.peek()] == ["once"]


async def test_system_event_with_instance_upserts_presence(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    peer, _ = await authenticated(session, gateway)
    await next_event(peer, "presence")
    await peer.send(request("system-event", {"text": "hi", "instanceId": "mac-1", "mode": "ui"}))
    event = await next_event(peer, "presence")
    entry = next(e for e in event["payload"]["presence"] if e.get("instanceId") == "mac-1")  # type: ignore[index,union-attr]
    assert entry["text"] == "hi" and entry["mode"] == "ui"


async def test_heartbeats_switch_and_last_heartbeat(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    peer, _ = await authenticated(session, gateway)
    await peer.send(request("last-heartbeat", None, "l"))
    assert (await peer.response("l"))["payload"] is None
    await peer.send(request("set-heartbeats", {"enabled": False}, "off"))
    assert (await peer.response("off"))["payload"] == {"ok": True, "enabled": False}
    assert gateway.server.heartbeats.enabled is False
    await gateway.server.heartbeats.beat()
    event = await next_event(peer, "heartbeat")
    await peer.send(request("last-heartbeat", None, "l2"))
    assert (await peer.response("l2"))["payload"] == event["payload"]


async def test_logs_tail_reads_the_log_file(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    log_file = gateway.home / "logs" / "gateway.log"
    log_file.write_text("first\nsecond\n")
    peer, _ = await authenticated(session, gateway)
    await peer.send(request("logs.tail", {"limit": 1}, "t"))
    payload = (await peer.response("t"))["payload"]
    assert payload["lines"] == ["second"] and payload["file"] == "gateway.log"


async def test_shutdown_event_then_close_1012(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    v4, _ = await authenticated(session, gateway)
    v3, _ = await authenticated(session, gateway, maxProtocol=3)
    stopping = asyncio.create_task(gateway.server.stop())
    event4 = await next_event(v4, "shutdown")
    event3 = await next_event(v3, "shutdown")
    assert event4["payload"] == {"reason": "gateway stopping", "restartExpectedMs": None}
    assert event3["payload"] == {"reason": "gateway stopping"}
    assert await v4.closed() == 1012
    assert await v3.closed() == 1012
    await stopping


async def test_upgrades_are_refused_while_stopping(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    gateway.server.stopping = True
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await session.ws_connect(gateway.url)
    assert caught.value.status == 503
    gateway.server.stopping = False


async def test_http_ops_endpoints(gateway: RunningGateway, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{gateway.http_url}/healthz") as response:
        assert await response.json() == {"ok": True, "status": "live"}
    async with session.get(f"{gateway.http_url}/readyz") as response:
        body = await response.json()
        assert response.status == 200 and body["ready"] is True and body["failing"] == []
    peer, _ = await authenticated(session, gateway)
    await peer.send(request("nope", None, "x"))
    await peer.response("x")
    await peer.send(request("health", None, "h"))
    await peer.response("h")
    async with session.get(f"{gateway.http_url}/metrics") as response:
        text = await response.text()
    assert "clawgate_connections 1.0" in text
    assert 'clawgate_errors_total{code="INVALID_REQUEST"} 1.0' in text
    assert "clawgate_method_latency_seconds_bucket" in text
    assert "clawgate_frames_in_total" in text


async def test_readyz_is_503_while_not_ready(
    gateway: RunningGateway, session: aiohttp.ClientSession
) -> None:
    gateway.server.ready = False
    async with session.get(f"{gateway.http_url}/readyz") as response:
        assert response.status == 503
        assert (await response.json())["ready"] is False


async def test_schema_is_served(gateway: RunningGateway, session: aiohttp.ClientSession) -> None:
    async with session.get(f"{gateway.http_url}/protocol.schema.json") as response:
        schema = await response.json()
    assert "health.params" in schema["definitions"]
