"""What OpenClaw's Control UI needs over the wire: its params accepted, its methods served."""

from __future__ import annotations

from pathlib import Path

from clawgate.client import load_or_create_identity
from tests.conftest import GatewayFactory
from tests.integration.chat_helpers import admin_peer, agent_gateway, chat_events
from tests.integration.conftest import PeerFactory

# Exactly what OpenClaw 2026.9.6's Control UI sends when the chat view opens (frame log).
UI_SESSIONS_LIST = {
    "includeGlobal": True,
    "includeUnknown": True,
    "configuredAgentsOnly": True,
    "limit": 200,
    "includeDerivedTitles": True,
    "includeLastMessage": True,
    "agentId": "main",
}
# The shell's calls on every page (issue 21, point 3): each must be advertised and answer.
SHELL = (
    "update.status",
    "question.list",
    "exec.approval.list",
    "plugin.approval.list",
    "openclaw.approval.list",
    "sessions.observer.visibility",
    "themes.list",
    "system.info",
    "diagnostics.lanes",
    "chat.startup",
)


async def test_the_control_uis_sessions_list_is_answered_with_paging_fields(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    listed = await peer.client.call("sessions.list", UI_SESSIONS_LIST)
    assert listed["totalCount"] == 1 and listed["hasMore"] is False
    assert "nextOffset" not in listed
    assert listed["defaults"] == {"modelProvider": "clawgate", "model": "echo"}
    assert [s["key"] for s in listed["sessions"]] == ["agent:main:main"]


async def test_sessions_list_clamps_a_large_limit_and_pages_with_offset(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    for name in ("a", "b"):
        await peer.client.call("sessions.create", {"key": name})
    first = await peer.client.call("sessions.list", {"limit": 2, "sortBy": "updatedAt"})
    assert first["count"] == 2 and first["totalCount"] == 3
    assert first["hasMore"] is True and first["nextOffset"] == 2
    rest = await peer.client.call("sessions.list", {"offset": 2, "limit": 50_000})
    assert rest["count"] == 1 and rest["hasMore"] is False
    archived = await peer.client.call("sessions.list", {"archived": True})
    assert archived["sessions"] == []


async def test_a_property_no_openclaw_schema_defines_is_still_refused(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    reply = await peer.client.request("sessions.list", {"bogus": 1})
    assert reply.error is not None
    assert (
        reply.error.message == "invalid sessions.list params: at root: unexpected property 'bogus'"
    )


async def test_chat_startup_returns_the_history_with_a_delta_cursor(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    await peer.client.call(
        "chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "r1"}
    )
    await chat_events(peer, "r1")
    started = await peer.client.call(
        "chat.startup", {"sessionKey": "agent:main:main", "limit": 80, "maxBytes": 262_144}
    )
    texts = [m["content"][0]["text"] for m in started["messages"]]
    assert texts == ["hi", "hi"]
    assert started["messages"][0]["__openclaw"]["idempotencyKey"] == "r1"
    assert started["sessionInfo"]["key"] == "agent:main:main"
    assert started["defaults"]["model"] == "echo"

    await peer.client.call(
        "chat.send", {"sessionKey": "main", "message": "more", "idempotencyKey": "r2"}
    )
    await chat_events(peer, "r2")
    delta = await peer.client.call(
        "chat.history", {"sessionKey": "main", "cursor": started["deltaCursor"]}
    )
    assert delta["kind"] == "delta"
    assert [m["content"][0]["text"] for m in delta["messages"]] == ["more", "more"]
    await peer.client.call("sessions.reset", {"key": "main"})
    stale = await peer.client.call(
        "chat.history", {"sessionKey": "main", "cursor": delta["deltaCursor"]}
    )
    assert stale == {"kind": "reset"}


async def test_chat_startup_by_short_id_resolves_to_nothing(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    result = await peer.client.call("chat.startup", {"shortId": "abc", "agentId": "main"})
    assert result == {"resolution": {"ok": False}}


async def test_chat_send_accepts_the_control_uis_fields(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    sent = await peer.client.call(
        "chat.send",
        {
            "sessionKey": "agent:main:main",
            "message": "x",
            "idempotencyKey": "r1",
            "expectedLeafEntryId": None,
            "sessionId": "whatever",
            "agentId": "main",
        },
    )
    assert sent == {"runId": "r1", "status": "started"}


async def test_session_message_goes_to_followers_of_that_session_only(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    follower = await admin_peer(client_factory, gateway)
    other = await admin_peer(client_factory, gateway)
    subscribed = await follower.client.call(
        "sessions.messages.subscribe", {"key": "agent:main:main", "includeApprovals": True}
    )
    assert subscribed["subscribed"] is True and subscribed["key"] == "agent:main:main"
    assert subscribed["approvalReplay"]["approvals"] == []
    await other.client.call("sessions.messages.subscribe", {"key": "elsewhere"})
    await follower.client.call(
        "chat.send", {"sessionKey": "main", "message": "ping", "idempotencyKey": "r1"}
    )
    user = (await follower.next_event("session.message")).payload
    assert user["sessionKey"] == "agent:main:main" and user["message"]["role"] == "user"
    assert user["runId"] == "r1" and user["messageSeq"] >= 1
    reply = (await follower.next_event("session.message")).payload
    assert reply["message"]["role"] == "assistant"
    assert reply["message"]["content"][0]["text"] == "ping"
    # Main's messages were all sent before this one: the first `other` gets is its own.
    await other.client.call(
        "chat.send", {"sessionKey": "elsewhere", "message": "p", "idempotencyKey": "r2"}
    )
    first = (await other.next_event("session.message")).payload
    assert first["sessionKey"] == "agent:main:elsewhere"
    off = await follower.client.call("sessions.messages.unsubscribe", {"key": "main"})
    assert off == {"subscribed": False, "key": "agent:main:main"}


async def test_sessions_describe_answers_null_for_an_unknown_key(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    known = await peer.client.call("sessions.describe", {"key": "agent:main:main"})
    assert known["session"]["sessionId"]
    assert await peer.client.call("sessions.describe", {"key": "nope"}) == {"session": None}
    visible = await peer.client.call("sessions.observer.visibility", {"visible": True})
    assert visible == {"ok": True}


async def test_the_shell_methods_answer_for_clawgate(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    call = peer.client.call
    assert await call("update.status", {}) == {"sentinel": None, "updateAvailable": None}
    assert await call("question.list", {}) == {"questions": []}
    assert await call("plugin.approval.list", {}) == []
    assert await call("openclaw.approval.list", {}) == []
    assert (await call("usage.status", {}))["providers"] == []
    info = await call("system.info", {})
    assert info["pid"] > 0 and info["cpuCount"] >= 1 and "clawgate" in info["nodeVersion"]
    lanes = await call("diagnostics.lanes", {})
    assert lanes["lanes"] == [] and lanes["dynamic"] is None
    assert await call("exec.approval.list", {}) == {"approvals": []}
    for name in SHELL:
        assert name in peer.hello["features"]["methods"]


async def test_themes_list_answers_the_built_in_themes_with_claw_in_effect(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    themes = await peer.client.call("themes.list", {})
    assert themes["current"] == {
        "id": "claw",
        "mode": "system",
        "scope": "gateway",
        "overrides": {},
    }
    assert themes["theme"]["id"] == "claw"
    ids = [t["id"] for t in themes["themes"]]
    assert ids[0] == "claw" and len(ids) == 11
    assert {t["source"] for t in themes["themes"]} == {"builtin"}


async def test_paired_devices_are_listed_with_openclaws_fields(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, tmp_path: Path
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    identity = load_or_create_identity(tmp_path / "device.json")
    # A UI-mode client, so it is present (CLI-mode clients are not listed in presence).
    peer = await client_factory(
        gateway, scopes=["operator.admin"], identity=identity, client_mode="ui"
    )
    listed = await peer.client.call("device.pair.list", {})
    row = listed["paired"][0]
    assert row["role"] == "operator" and "operator.admin" in row["scopes"]
    assert row["connected"] is True and row["lastSeenAtMs"] > 0


async def test_sessions_usage_reports_the_runs_in_openclaws_shape(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    await peer.client.call(
        "chat.send", {"sessionKey": "main", "message": "hi", "idempotencyKey": "r1"}
    )
    await chat_events(peer, "r1")
    # What the Control UI's usage page sends (usage-*.js), a window wide enough for any clock.
    report = await peer.client.call(
        "sessions.usage",
        {
            "startDate": "2000-01-01",
            "endDate": "2099-12-31",
            "agentScope": "all",
            "mode": "specific",
            "timeZone": "UTC",
            "utcOffset": "UTC+0",
            "groupBy": "instance",
            "limit": 1000,
            "includeContextWeight": False,
        },
    )
    assert (report["startDate"], report["endDate"]) == ("2000-01-01", "2099-12-31")
    assert set(report) == {
        "updatedAt", "startDate", "endDate", "sessions", "totals", "aggregates",
        "creatorOptions", "cacheStatus",
    }  # fmt: skip
    [row] = report["sessions"]
    assert row["key"] == "agent:main:main" and row["agentId"] == "main"
    assert {"label", "sessionId", "scope", "updatedAt", "channel", "chatType", "model"} - set(
        row
    ) <= {"channel"}
    counts = row["usage"]["messageCounts"]
    assert (counts["total"], counts["user"], counts["assistant"]) == (2, 1, 1)
    assert row["usage"]["totalTokens"] == 0 and report["totals"]["totalCost"] == 0
    aggregates = report["aggregates"]
    assert aggregates["sessionCount"] == 1 and aggregates["messages"]["total"] == 2
    assert [d["messages"] for d in aggregates["daily"]] == [2]
    assert [a["agentId"] for a in aggregates["byAgent"]] == ["main"]


async def test_sessions_usage_refuses_all_agents_with_a_key(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    reply = await peer.client.request("sessions.usage", {"agentScope": "all", "key": "main"})
    assert reply.error is not None and reply.error.code == "INVALID_REQUEST"


async def test_the_plugin_catalog_the_plugins_page_browses_is_empty(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await agent_gateway(gateway_factory, echo_delay_ms=0)
    peer = await admin_peer(client_factory, gateway)
    assert "plugins.catalog.browse" in peer.hello["features"]["methods"]
    # Exactly what the 2026.9.6 plugins page sends (frame log).
    browsed = await peer.client.call("plugins.catalog.browse", {"intent": "all", "pageSize": 100})
    assert browsed == {"items": [], "categories": []}
