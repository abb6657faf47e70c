"""Agent runs over the wire: lifecycle, per-run seq, idempotency, abort, timeout, lanes."""

from __future__ import annotations

import asyncio

from clawgate.client import GatewayCallError
from tests.conftest import GatewayFactory
from tests.integration.chat_helpers import admin_peer, agent_gateway, run_events
from tests.integration.conftest import PeerFactory


async def test_agent_answers_twice_and_streams_events_in_order(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    first, final = await peer.client.call_streaming(
        "agent", {"message": "one two three", "idempotencyKey": "run-1"}
    )
    assert first["runId"] == "run-1" and first["status"] == "accepted"
    events = await run_events(peer, "run-1")
    response = await asyncio.wait_for(final, 5)
    assert response.ok and response.payload["status"] == "ok"
    assert response.payload["result"]["payloads"] == [{"text": "one two three"}]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["data"]["phase"] == "start"
    assert events[-1]["data"] == {"phase": "end", "endedAt": events[-1]["data"]["endedAt"]}
    texts = [e["data"]["text"] for e in events if e["stream"] == "assistant"]
    assert texts == ["one", "one two", "one two three"]
    assert all(e["sessionKey"] == "agent:main:main" for e in events)


async def test_retried_agent_returns_the_same_run_never_a_second(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=50)
    peer = await admin_peer(client_factory, gateway)
    params = {"message": "a b c d", "idempotencyKey": "same"}
    first, final = await peer.client.call_streaming("agent", params)
    again, final_again = await peer.client.call_streaming("agent", params)
    assert again == first
    one, two = await asyncio.wait_for(asyncio.gather(final, final_again), 5)
    assert one.payload == two.payload
    # After the end a duplicate gets the cached final only, as its single response.
    late, late_final = await peer.client.call_streaming("agent", params)
    assert late == one.payload and (await late_final).payload == one.payload
    history = await peer.client.call("chat.history", {"sessionKey": "main"})
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]


async def test_abort_mid_stream_stops_the_run(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=100)
    peer = await admin_peer(client_factory, gateway)
    words = " ".join(f"w{i}" for i in range(50))
    _, final = await peer.client.call_streaming("agent", {"message": words, "idempotencyKey": "ab"})
    await peer.next_event("agent")
    answer = await peer.client.call("chat.abort", {"sessionKey": "main"})
    assert answer == {"ok": True, "aborted": True, "runIds": ["ab"]}
    response = await asyncio.wait_for(final, 5)
    assert not response.ok
    assert response.error is not None and response.error.details == {"code": "ABORTED"}
    assert response.payload == {"runId": "ab", "status": "error", "summary": "aborted"}
    run = gateway.server.agents.runs.get("ab")  # type: ignore[union-attr]
    assert run is not None and len(run.text.split()) < 50
    waited = await peer.client.call("agent.wait", {"runId": "ab", "timeoutMs": 0})
    assert waited["status"] == "timeout"  # an aborted run reports timeout, as OpenClaw


async def test_run_timeout_is_agent_timeout(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=400)
    peer = await admin_peer(client_factory, gateway)
    _, final = await peer.client.call_streaming(
        "agent", {"message": "a b c d e f g", "idempotencyKey": "slow", "timeout": 1}
    )
    events = await run_events(peer, "slow")
    response = await asyncio.wait_for(final, 5)
    assert response.error is not None and response.error.code == "AGENT_TIMEOUT"
    assert [e["stream"] for e in events[-2:]] == ["error", "lifecycle"]
    assert events[-2]["data"]["reason"] == "timeout"
    assert events[-1]["data"]["phase"] == "error"


async def test_runs_on_one_session_are_serialised_and_sessions_run_concurrently(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=60)
    peer = await admin_peer(client_factory, gateway)
    text = "a b c d e"
    for run_id, key in (("s1", "one"), ("s2", "one"), ("t1", "two")):
        sent = await peer.client.call(
            "chat.send", {"sessionKey": key, "message": text, "idempotencyKey": run_id}
        )
        assert sent == {"runId": run_id, "status": "started"}
    order: list[tuple[str, str]] = []
    async with asyncio.timeout(10):
        async for event in peer.events:
            if event.event == "agent" and event.payload["stream"] == "lifecycle":
                order.append((event.payload["runId"], event.payload["data"]["phase"]))
                if len(order) == 6:
                    break
    assert order.index(("s1", "end")) < order.index(("s2", "start"))
    # t1 started before s1 ended: a busy session never blocks another one.
    assert order.index(("t1", "start")) < order.index(("s1", "end"))


async def test_agent_wait_and_unknown_run(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    await peer.client.call("chat.send", {"sessionKey": "k", "message": "hi", "idempotencyKey": "w"})
    waited = await peer.client.call("agent.wait", {"runId": "w"})
    assert waited["status"] == "ok" and waited["endedAt"] >= waited["startedAt"]
    try:
        await peer.client.call("agent.wait", {"runId": "nope"})
    except GatewayCallError as exc:
        assert exc.code == "AGENT_RESULT_NOT_FOUND"
    else:
        raise AssertionError("agent.wait on an unknown run succeeded")


async def test_bad_agent_requests_get_clear_errors(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    cases = [
        ({"message": "  ", "idempotencyKey": "e1"}, "message is empty"),
        ({"message": "x", "attachments": [{}], "idempotencyKey": "e2"}, "attachments"),
        ({"message": "x", "agentId": "other", "idempotencyKey": "e3"}, "unknown agent id"),
        ({"message": "x", "sessionId": "nope", "idempotencyKey": "e4"}, "unknown sessionId"),
    ]
    for params, text in cases:
        response = await peer.client.request("agent", params)
        assert not response.ok and response.error is not None
        assert text in response.error.message, response.error
    # A refused request left nothing behind: the same key can now start a run.
    ok, final = await peer.client.call_streaming("agent", {"message": "x", "idempotencyKey": "e1"})
    assert ok["status"] == "accepted" and (await final).ok


async def test_identity(gateway_factory: GatewayFactory, client_factory: PeerFactory) -> None:
    gateway = await agent_gateway(gateway_factory, name="Clawd", avatar="🦀")
    peer = await client_factory(gateway, scopes=["operator.read"])
    identity = await peer.client.call("agent.identity.get", {})
    assert identity == {"agentId": "main", "name": "Clawd", "avatar": "🦀"}
