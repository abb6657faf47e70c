"""Chat over the wire: send, duplicates, throttled deltas, history, paging, inject, restart."""

from __future__ import annotations

import asyncio
import itertools

from tests.conftest import GatewayFactory
from tests.integration.chat_helpers import admin_peer, agent_gateway, chat_events, run_events
from tests.integration.conftest import PeerFactory


async def test_chat_send_streams_deltas_then_final_and_keeps_history(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=20)
    peer = await admin_peer(client_factory, gateway)
    text = " ".join(f"word{i}" for i in range(30))
    sent = await peer.client.call(
        "chat.send", {"sessionKey": "main", "message": text, "idempotencyKey": "c1"}
    )
    assert sent == {"runId": "c1", "status": "started"}
    duplicate = await peer.client.call(
        "chat.send", {"sessionKey": "main", "message": text, "idempotencyKey": "c1"}
    )
    assert duplicate == {"runId": "c1", "status": "in_flight"}
    events = await chat_events(peer, "c1")
    deltas, final = events[:-1], events[-1]
    assert final["state"] == "final" and final["message"]["content"][0]["text"] == text
    assert deltas and deltas[-1]["message"]["content"][0]["text"] == text  # flushed first
    # Throttled: deltas at least 150 ms apart (server timestamps), fewer than the words.
    stamps = [d["message"]["timestamp"] for d in deltas]
    assert all(b - a >= 150 for a, b in itertools.pairwise(stamps[:-1]))
    assert len(deltas) < 30
    # v4 deltaText pieces add up to the whole text; seq echoes the agent seq.
    assert "".join(d["deltaText"] for d in deltas) == text
    assert [d["seq"] for d in deltas] == sorted(d["seq"] for d in deltas)
    ended = await peer.client.call(
        "chat.send", {"sessionKey": "main", "message": text, "idempotencyKey": "c1"}
    )
    assert ended == {"runId": "c1", "status": "ok"}
    history = await peer.client.call("chat.history", {"sessionKey": "main"})
    assert [(m["role"], m["content"][0]["text"]) for m in history["messages"]] == [
        ("user", text),
        ("assistant", text),
    ]
    assert history["thinkingLevel"] == "off" and history["hasMore"] is False


async def test_history_survives_a_restart(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    await peer.client.call(
        "chat.send", {"sessionKey": "diary", "message": "remember me", "idempotencyKey": "r"}
    )
    await chat_events(peer, "r")
    await peer.client.close()
    await gateway.restart()
    again = await admin_peer(client_factory, gateway)
    history = await again.client.call("chat.history", {"sessionKey": "diary"})
    assert [m["content"][0]["text"] for m in history["messages"]] == ["remember me"] * 2
    sessions = await again.client.call("sessions.list", {})
    keys = [s["key"] for s in sessions["sessions"]]
    assert keys[0] == "agent:main:diary" and "agent:main:main" in keys


async def test_history_pages_with_before_and_truncates_with_max_chars(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    await peer.client.call("sessions.create", {"key": "notes"})
    for index in range(5):
        await peer.client.call("chat.inject", {"sessionKey": "notes", "message": f"note {index}"})
    page = await peer.client.call("chat.history", {"sessionKey": "notes", "limit": 2})
    assert [m["content"][0]["text"] for m in page["messages"]] == ["note 3", "note 4"]
    assert page["hasMore"] is True
    older = await peer.client.call(
        "chat.history", {"sessionKey": "notes", "limit": 2, "before": page["cursor"]}
    )
    assert [m["content"][0]["text"] for m in older["messages"]] == ["note 1", "note 2"]
    oldest = await peer.client.call(
        "chat.history", {"sessionKey": "notes", "limit": 2, "before": older["cursor"]}
    )
    assert [m["content"][0]["text"] for m in oldest["messages"]] == ["note 0"]
    assert oldest["hasMore"] is False and "cursor" not in oldest
    short = await peer.client.call("chat.history", {"sessionKey": "notes", "maxChars": 3})
    assert {m["content"][0]["text"] for m in short["messages"]} == {"not"}


async def test_chat_abort_stops_one_run_and_keeps_the_partial_reply(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=100)
    peer = await admin_peer(client_factory, gateway)
    text = " ".join(f"w{i}" for i in range(40))
    await peer.client.call(
        "chat.send", {"sessionKey": "main", "message": text, "idempotencyKey": "x"}
    )
    await peer.next_event("chat")
    answer = await peer.client.call("chat.abort", {"sessionKey": "main", "runId": "x"})
    assert answer == {"ok": True, "aborted": True, "runIds": ["x"]}
    events = await chat_events(peer, "x")
    assert events[-1]["state"] == "aborted"
    again = await peer.client.call("chat.abort", {"sessionKey": "main", "runId": "x"})
    assert again == {"ok": True, "aborted": False, "runIds": []}
    sent = await peer.client.call(
        "chat.send", {"sessionKey": "main", "message": text, "idempotencyKey": "x"}
    )
    assert sent["status"] == "aborted"
    history = await peer.client.call("chat.history", {"sessionKey": "main"})
    partial = history["messages"][-1]["content"][0]["text"]
    assert history["messages"][-1]["role"] == "assistant" and text.startswith(partial)
    assert partial != text


async def test_read_only_client_sees_events_but_cannot_send(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    writer = await admin_peer(client_factory, gateway)
    reader = await client_factory(gateway, scopes=["operator.read"])
    refused = await reader.client.request(
        "chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "ro"}
    )
    assert refused.error is not None and refused.error.code == "FORBIDDEN"
    await writer.client.call(
        "chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "w"}
    )
    agent = await run_events(reader, "w")
    assert agent[-1]["data"]["phase"] == "end"
    events = await chat_events(reader, "w")
    assert events[-1]["state"] == "final"


async def test_chat_inject_needs_an_existing_session(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory)
    peer = await admin_peer(client_factory, gateway)
    response = await peer.client.request("chat.inject", {"sessionKey": "ghost", "message": "x"})
    assert response.error is not None and "unknown session" in response.error.message


async def test_two_sends_to_a_new_session_run_in_arrival_order(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=5)
    peer = await admin_peer(client_factory, gateway)
    calls = [
        peer.client.call(
            "chat.send", {"sessionKey": "fresh", "message": text, "idempotencyKey": key}
        )
        for key, text in (("first", "one two"), ("second", "three four"))
    ]
    # Sent back to back on one socket: the first creates the session, the second must
    # not overtake it while that insert is being committed.
    await asyncio.gather(*calls)
    await chat_events(peer, "first")
    await chat_events(peer, "second")
    history = await peer.client.call("chat.history", {"sessionKey": "fresh"})
    users = [m["content"][0]["text"] for m in history["messages"] if m["role"] == "user"]
    assert users == ["one two", "three four"]
    first = await peer.client.call("agent.wait", {"runId": "first"})
    second = await peer.client.call("agent.wait", {"runId": "second"})
    assert first["endedAt"] <= second["startedAt"]
