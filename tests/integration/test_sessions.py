"""Sessions over the wire: list, get, create, reset, delete and `sessions.changed`."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import GatewayFactory
from tests.integration.chat_helpers import admin_peer, agent_gateway, chat_events
from tests.integration.conftest import Peer, PeerFactory


async def changed(peer: Peer) -> dict[str, Any]:
    return (await peer.next_event("sessions.changed")).payload  # type: ignore[no-any-return]


async def names_until_health(peer: Peer) -> list[str]:
    names: list[str] = []
    async with asyncio.timeout(5):
        async for event in peer.events:
            if event.event == "health" and event.payload["sessions"]["count"] >= 2:
                return names
            names.append(event.event)
    raise AssertionError("closed before the marker")


async def test_session_lifecycle_and_changes_to_subscribers_only(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    bystander = await admin_peer(client_factory, gateway)
    assert await peer.client.call("sessions.subscribe", {}) == {"ok": True, "subscribed": True}
    created = await peer.client.call(
        "sessions.create", {"key": "work", "label": "Work", "task": "be brief"}
    )
    assert created["key"] == "agent:main:work" and created["session"]["label"] == "Work"
    event = await changed(peer)
    assert event["reason"] == "created" and event["sessionKey"] == "agent:main:work"
    assert (await changed(peer))["messageCount"] == 1  # the task note
    dup = await peer.client.request("sessions.create", {"key": "work"})
    assert dup.error is not None and "exists already" in dup.error.message
    got = await peer.client.call("sessions.get", {"key": "work"})
    assert got["session"]["sessionId"] == created["sessionId"]
    listed = await peer.client.call("sessions.list", {"search": "wor"})
    assert [s["key"] for s in listed["sessions"]] == ["agent:main:work"]

    reset = await peer.client.call("sessions.reset", {"key": "work"})
    assert reset["sessionId"] != created["sessionId"]
    event = await changed(peer)
    assert event["reason"] == "reset" and event["messageCount"] == 0
    history = await peer.client.call("chat.history", {"sessionKey": "work"})
    assert history["messages"] == [] and history["sessionId"] == reset["sessionId"]

    deleted = await peer.client.call("sessions.delete", {"key": "work"})
    assert deleted == {"ok": True, "key": "agent:main:work", "deleted": True}
    assert await changed(peer) == {"sessionKey": "agent:main:work", "reason": "deleted"}
    again = await peer.client.call("sessions.delete", {"key": "work"})
    assert again["deleted"] is False
    main = await peer.client.request("sessions.delete", {"key": "main"})
    assert main.error is not None and "main session" in main.error.message
    unknown = await peer.client.request("sessions.get", {"key": "work"})
    assert unknown.error is not None and unknown.error.code == "INVALID_REQUEST"

    assert await peer.client.call("sessions.unsubscribe", {}) == {"ok": True}
    await peer.client.call("sessions.create", {"key": "quiet"})
    health = await peer.client.call("health", {"probe": True})  # a marker event for all
    assert health["sessions"]["count"] >= 2
    assert "sessions.changed" not in await names_until_health(peer)
    assert "sessions.changed" not in await names_until_health(bystander)


async def test_create_with_message_starts_a_run(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    created = await peer.client.call("sessions.create", {"message": "hello"})
    assert created["key"].startswith("agent:main:") and created["runId"]
    events = await chat_events(peer, created["runId"])
    assert events[-1]["message"]["content"][0]["text"] == "hello"


async def test_reset_aborts_the_running_reply(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=100)
    peer = await admin_peer(client_factory, gateway)
    text = " ".join("x" * 3 for _ in range(40))
    await peer.client.call(
        "chat.send", {"sessionKey": "r", "message": text, "idempotencyKey": "rr"}
    )
    await peer.next_event("chat")
    await peer.client.call("sessions.reset", {"key": "r"})
    events = await chat_events(peer, "rr")
    assert events[-1]["state"] == "aborted"
    history = await peer.client.call("chat.history", {"sessionKey": "r"})
    assert history["messages"] == []


async def test_unknown_agent_and_bad_keys(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory)
    peer = await admin_peer(client_factory, gateway)
    for method, params in (
        ("sessions.list", {"agentId": "zed"}),
        ("sessions.create", {"key": "agent:zed:x"}),
        ("chat.history", {"sessionKey": "agent:zed:x"}),
    ):
        response = await peer.client.request(method, params)
        assert response.error is not None
        assert response.error.details == {"code": "UNKNOWN_AGENT_ID", "agentId": "zed"}
    bad = await peer.client.request("sessions.get", {"key": "agent::"})
    assert bad.error is not None and "invalid session key" in bad.error.message
