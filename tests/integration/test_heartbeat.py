"""The heartbeat over the wire: agent turns, the ack token, active hours, wake, delivery.

The echo agent answers with the prompt it was given, so the prompt decides the reply: a
prompt of `HEARTBEAT_OK` is an acknowledgement, anything else a message to deliver.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from clawgate.automation.delivery import WEBCHAT, DeliveryTarget
from clawgate.automation.heartbeat_rules import ActiveHours, HeartbeatSettings
from clawgate.config import AgentSection
from clawgate.gateway.heartbeat import BeatTrigger
from clawgate.protocol.auth import AuthMode, SharedSecretAuth
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.clock import FakeClock
from tests.integration.conftest import Peer, PeerFactory

TOKEN = "heartbeat-config-token-0123456789"


async def start(
    factory: GatewayFactory, clock: FakeClock | None = None, **heartbeat: Any
) -> RunningGateway:
    """A Berlin gateway with an instant echo agent and these `[heartbeat]` settings."""
    return await factory(
        clock=clock,
        timezone="Europe/Berlin",
        agent=AgentSection(echo_delay_ms=0),
        heartbeat=HeartbeatSettings(**{"every_s": 3600, **heartbeat}),
    )


async def admin(clients: PeerFactory, gateway: RunningGateway) -> Peer:
    return await clients(gateway, scopes=["operator.admin"])


async def main_texts(peer: Peer) -> list[str]:
    history = await peer.client.call("chat.history", {"sessionKey": "main"})
    return [message["content"][0]["text"] for message in history["messages"]]


async def test_a_reply_of_only_the_ack_token_is_not_delivered(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory, prompt="HEARTBEAT_OK")
    peer = await admin(client_factory, gateway)
    event = await gateway.server.heartbeats.beat()
    assert event["status"] == "ok-token" and "to" not in event
    assert (await peer.next_event("heartbeat")).payload == event
    assert await main_texts(peer) == []


async def test_a_configured_ack_token_is_suppressed_too(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory, prompt="**ALL_QUIET**", ack_token="ALL_QUIET")
    peer = await admin(client_factory, gateway)
    assert (await gateway.server.heartbeats.beat())["status"] == "ok-token"
    assert await main_texts(peer) == []


async def test_any_other_reply_is_delivered_to_the_target_session(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory, prompt="The oven is still on.")
    peer = await admin(client_factory, gateway)
    event = await gateway.server.heartbeats.beat()
    assert event["status"] == "sent"
    assert (event["channel"], event["to"]) == ("webchat", "agent:main:main")
    assert event["preview"] == "The oven is still on." and event["durationMs"] >= 0
    assert await main_texts(peer) == ["The oven is still on."]
    # Open pages of the main chat hear of it at once.
    while (chat := await peer.next_event("chat")).payload["sessionKey"] != "agent:main:main":
        pass
    assert chat.payload["state"] == "final"
    assert (await peer.client.call("last-heartbeat")) == event


async def test_delivery_to_a_missing_session_fails_with_the_reason(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    target = DeliveryTarget(WEBCHAT, "agent:main:nowhere")
    gateway = await start(gateway_factory, prompt="hello", target=target)
    event = await gateway.server.heartbeats.beat()
    assert event["status"] == "failed"
    assert event["reason"].startswith("delivery failed: webchat:agent:main:nowhere: ")
    assert "no WebChat session agent:main:nowhere" in event["reason"]


async def test_outside_active_hours_a_scheduled_beat_is_skipped(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(datetime(2026, 7, 1, 21, 30, tzinfo=UTC))  # 23:30 in Berlin
    hours = ActiveHours.parse("08:00-22:00")
    gateway = await start(gateway_factory, clock, prompt="hello", active_hours=hours)
    peer = await admin(client_factory, gateway)
    night = await gateway.server.heartbeats.beat(BeatTrigger.SCHEDULED)
    assert night["status"] == "skipped" and night["reason"] == "quiet-hours (active 08:00-22:00)"
    clock.set(datetime(2026, 7, 1, 6, 0, tzinfo=UTC))  # 08:00 in Berlin
    morning = await gateway.server.heartbeats.beat(BeatTrigger.SCHEDULED)
    assert morning["status"] == "sent"
    assert await main_texts(peer) == ["hello"]


async def test_a_wake_runs_outside_active_hours(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    clock = FakeClock(datetime(2026, 7, 1, 1, 0, tzinfo=UTC))  # 03:00 in Berlin
    hours = ActiveHours.parse("08:00-22:00")
    gateway = await start(gateway_factory, clock, prompt="HEARTBEAT_OK", active_hours=hours)
    peer = await admin(client_factory, gateway)
    assert await peer.client.call("wake", {"mode": "now", "text": "the build broke"}) == {
        "ok": True
    }
    event = (await peer.next_event("heartbeat")).payload
    # The echo agent repeats its prompt: the system event was in it, so it is a message.
    assert event["status"] == "sent"
    assert (
        "System events since the last heartbeat:\n- the build broke" in (await main_texts(peer))[0]
    )


async def test_wake_now_hands_the_system_event_to_the_beat_which_consumes_it(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory, prompt="check in")
    peer = await admin(client_factory, gateway)
    await peer.client.call("wake", {"mode": "now", "text": "mail from Ann"})
    assert (await peer.next_event("heartbeat")).payload["status"] == "sent"
    assert (await peer.client.call("status"))["queuedSystemEvents"] == []
    (text,) = await main_texts(peer)
    assert text == "check in\n\nSystem events since the last heartbeat:\n- mail from Ann"


async def test_wake_next_heartbeat_only_queues_the_event(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory, prompt="check in")
    peer = await admin(client_factory, gateway)
    await peer.client.call("wake", {"mode": "next-heartbeat", "text": "later"})
    await asyncio.sleep(0.2)
    assert await peer.client.call("last-heartbeat") is None
    queued = (await peer.client.call("status"))["queuedSystemEvents"]
    assert [event["text"] for event in queued] == ["later"]
    await gateway.server.heartbeats.beat()
    assert (await peer.client.call("status"))["queuedSystemEvents"] == []


async def test_wake_with_an_idempotency_key_queues_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory, prompt="check in")
    peer = await admin(client_factory, gateway)
    params = {"mode": "next-heartbeat", "text": "once", "idempotencyKey": "w1"}
    await peer.client.call("wake", params)
    await peer.client.call("wake", params)
    queued = (await peer.client.call("status"))["queuedSystemEvents"]
    assert [event["text"] for event in queued] == ["once"]


async def test_a_failed_turn_keeps_the_system_events_for_the_next_beat(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory(
        agent=AgentSection(echo_delay_ms=1500, timeout_s=1),
        heartbeat=HeartbeatSettings(prompt="far too slow"),
    )
    peer = await admin(client_factory, gateway)
    await peer.client.call("wake", {"mode": "next-heartbeat", "text": "keep me"})
    event = await gateway.server.heartbeats.beat()
    assert event["status"] == "failed" and "did not finish within 1 s" in event["reason"]
    queued = (await peer.client.call("status"))["queuedSystemEvents"]
    assert [e["text"] for e in queued] == ["keep me"]


async def test_heartbeat_md_in_the_workspace_is_the_default_prompt(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory)
    workspace = gateway.home / "workspace"
    workspace.mkdir()
    (workspace / "HEARTBEAT.md").write_text("Water the plants.\n")
    peer = await admin(client_factory, gateway)
    assert (await gateway.server.heartbeats.beat())["preview"] == "Water the plants."
    assert await main_texts(peer) == ["Water the plants."]


async def test_switched_off_heartbeats_skip_a_wake(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory, prompt="hello")
    peer = await admin(client_factory, gateway)
    await peer.client.call("set-heartbeats", {"enabled": False})
    await peer.client.call("wake", {"mode": "now", "text": "anyone?"})
    event = (await peer.next_event("heartbeat")).payload
    assert event["status"] == "skipped" and event["reason"] == "disabled"
    assert [e["text"] for e in (await peer.client.call("status"))["queuedSystemEvents"]] == [
        "anyone?"
    ]


async def test_the_runner_beats_on_its_schedule(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await start(gateway_factory, prompt="HEARTBEAT_OK", every_s=1)
    peer = await admin(client_factory, gateway)
    event = await peer.next_event("heartbeat", timeout=5)
    assert event.payload["status"] == "ok-token"
    status = await peer.client.call("status")
    assert status["heartbeat"]["agents"][0] == {
        "agentId": "main",
        "enabled": True,
        "every": "1s",
        "everyMs": 1000,
    }


async def test_a_config_patch_changes_the_cadence_without_a_restart(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, tmp_path: Path
) -> None:
    config_path = tmp_path / "config.toml"
    config_path.write_text(f'[gateway.auth]\ntoken = "{TOKEN}"\n')
    config_path.chmod(0o600)
    auth = SharedSecretAuth(AuthMode.TOKEN, TOKEN)
    gateway = await gateway_factory(auth=auth, config_path=config_path)
    peer = await client_factory(gateway, token=TOKEN, scopes=["operator.admin"])
    result = await peer.client.call(
        "config.patch", {"raw": '{"heartbeat": {"every": "2h", "active_hours": "09:00-17:00"}}'}
    )
    assert result["restartRequired"] is False
    assert gateway.server.heartbeats.every_s == 7200
    assert str(gateway.server.heartbeats.settings.active_hours) == "09:00-17:00"
    assert (await peer.client.call("health", {"probe": True}))["heartbeatSeconds"] == 7200
