"""The daemon side of the hub: GET /v1/daemon (control-plane spec §3, §7.1)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from clawgate.hub import link as hub_link
from clawgate.hub.settings import DEFAULT_HEARTBEAT_MS
from clawgate.protocol.control_link import MessageType
from tests.fakes.hub_daemon import SimDaemon

from .conftest import TEST_HEARTBEAT_MS, HubFactory, RunningHub, github_entry


async def test_register_gets_ack_then_desired_state(hub: RunningHub) -> None:
    daemon = await hub.daemon()
    assert daemon.ack is not None
    payload = daemon.ack["payload"]
    assert daemon.ack["type"] == "SERVICE_ACK"
    assert payload["protocolVersion"] == 1
    assert payload["heartbeatIntervalMs"] == TEST_HEARTBEAT_MS
    assert payload["maxMessageBytes"] == 16 * 1024 * 1024
    assert {"sessionId", "serverTime", "hubVersion"} <= set(payload)
    desired = await daemon.next("DESIRED_STATE")
    assert desired["payload"]["revision"] == 0
    assert desired["payload"]["integrations"] == []
    status, listing = await hub.call("GET", f"/v1/daemons/{daemon.daemon_id}")
    assert status == 200
    assert listing["connected"] is True
    assert listing["hostname"] == "sim-host"


async def test_desired_state_reaches_a_connected_daemon_with_secrets(hub: RunningHub) -> None:
    daemon = await hub.daemon()
    await daemon.next("DESIRED_STATE")
    status, body = await hub.call(
        "PUT", f"/v1/daemons/{daemon.daemon_id}/desired-state", {"integrations": [github_entry()]}
    )
    assert status == 200
    assert body == {"revision": 1}
    desired = await daemon.next("DESIRED_STATE")
    entry = desired["payload"]["integrations"][0]
    assert desired["payload"]["revision"] == 1
    assert entry["secrets"] == {"token": "ghp_supersecretvalue123"}
    assert entry["config"] == {"org": "acme"}


async def test_reconnect_always_gets_desired_state_and_unsettled_commands(
    hub: RunningHub,
) -> None:
    key = await hub.new_key()
    first = await hub.daemon(key=key, auto_ack=False)
    await hub.call("PUT", f"/v1/daemons/{first.daemon_id}/desired-state", {"integrations": []})
    status, posted = await hub.call(
        "POST",
        f"/v1/daemons/{first.daemon_id}/commands",
        {"name": "github.sync", "target": {"integrationId": "github"}, "params": {"n": 1}},
    )
    assert status == 202
    command = await first.next("COMMAND")
    assert command["payload"]["commandId"] == posted["commandId"]
    await first.ack_command(posted["commandId"], "accepted")
    await first.close()
    second = await hub.daemon(key=key, daemon_id=first.daemon_id)
    desired = await second.next("DESIRED_STATE")
    assert desired["payload"]["revision"] == 1
    resent = await second.next("COMMAND")
    assert resent["payload"]["commandId"] == posted["commandId"]
    status, record = await hub.call("GET", f"/v1/commands/{posted['commandId']}?wait=5")
    assert record["state"] == "done"
    assert [ack["state"] for ack in record["acks"]] == ["accepted", "accepted", "done"]


async def test_a_daemon_that_stops_reading_is_closed_1008_and_its_commands_wait(
    hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small queue bound, so a few megabytes of commands overflow it (the real one is 4,096).
    monkeypatch.setattr(hub_link, "SEND_QUEUE_MAX", 8)
    key = await hub.new_key()
    stalled = await hub.daemon(key=key, auto_ack=False, receive_buffer=64 * 1024)
    await stalled.next("DESIRED_STATE")
    await stalled.stop_reading()
    posted = []
    for n in range(100):
        status, body = await hub.call(
            "POST",
            f"/v1/daemons/{stalled.daemon_id}/commands",
            {
                "name": "bulk.load",
                "target": {"integrationId": "bulk"},
                "params": {"n": n, "blob": "x" * 65_536},
            },
        )
        assert status == 202
        posted.append(body["commandId"])
    assert await stalled.closed(timeout=30) == hub_link.CLOSE_SLOW_CONSUMER
    # Nothing was lost: the daemon back, every command reaches it and ends done.
    again = await hub.daemon(key=key, daemon_id=stalled.daemon_id)
    for command_id in posted:
        status, record = await hub.call("GET", f"/v1/commands/{command_id}?wait=10")
        assert (status, record["state"]) == (200, "done")
    assert sorted(again.executed) == sorted(posted)


async def test_hub_answers_a_daemon_ping_with_pong(hub: RunningHub) -> None:
    daemon = await hub.daemon()
    await daemon.send(MessageType.PING, {"nonce": "n-42"})
    pong = await daemon.next("PONG")
    assert pong["payload"] == {"nonce": "n-42"}
    sent = next(m for m in reversed(daemon.seen) if m["type"] == "PONG")
    assert sent["replyTo"]


async def test_hub_pings_every_heartbeat(hub: RunningHub) -> None:
    daemon = await hub.daemon()
    ping = await daemon.next("PING", timeout=2)
    assert ping["payload"]["nonce"]


async def test_silent_daemon_is_declared_dead(hub: RunningHub) -> None:
    daemon = await hub.daemon(answer_pings=False)
    code = await daemon.closed(timeout=5)
    assert code == 1001
    _status, listing = await hub.call("GET", f"/v1/daemons/{daemon.daemon_id}")
    assert listing["connected"] is False


async def test_bad_key_gets_401_before_upgrade(hub: RunningHub) -> None:
    daemon = SimDaemon(hub.link_url, "cgk_not-a-real-key")
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await daemon.connect()
    assert caught.value.status == 401


async def test_admin_token_cannot_open_a_link(hub: RunningHub) -> None:
    daemon = SimDaemon(hub.link_url, hub.admin_token)
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await daemon.connect()
    assert caught.value.status == 401


async def test_revoked_key_closes_live_link_with_4401_and_refuses_reconnect(
    hub: RunningHub,
) -> None:
    status, created = await hub.call("POST", "/v1/keys", {"label": "doomed"})
    daemon = await hub.daemon(key=created["key"])
    status, _ = await hub.call("DELETE", f"/v1/keys/{created['keyId']}")
    assert status == 200
    assert await daemon.closed() == 4401
    again = SimDaemon(hub.link_url, created["key"], daemon_id=daemon.daemon_id)
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await again.connect()
    assert caught.value.status == 401


async def test_second_session_for_one_daemon_closes_the_first_with_4409(
    hub: RunningHub,
) -> None:
    key = await hub.new_key()
    first = await hub.daemon(key=key)
    second = await hub.daemon(key=key, daemon_id=first.daemon_id)
    assert await first.closed() == 4409
    await second.next("DESIRED_STATE")
    _status, listing = await hub.call("GET", f"/v1/daemons/{first.daemon_id}")
    assert listing["connected"] is True
    assert listing["sessionId"] == second.ack["payload"]["sessionId"]  # type: ignore[index]


async def test_no_common_version_closes_4426(hub: RunningHub) -> None:
    daemon = SimDaemon(
        hub.link_url, await hub.new_key(), protocol_version=3, min_protocol_version=2
    )
    assert await daemon.connect() is None
    assert daemon.close_code == 4426


async def test_first_message_must_be_register(hub: RunningHub) -> None:
    daemon = SimDaemon(hub.link_url, await hub.new_key())
    await daemon.connect(register=False)
    await daemon.send(MessageType.PING, {"nonce": "x"})
    assert await daemon.closed() == 4400
    await daemon.close()


async def test_non_json_is_a_protocol_violation(hub: RunningHub) -> None:
    daemon = await hub.daemon()
    await daemon.send_raw("this is not json")
    assert await daemon.closed() == 4400


async def test_unknown_type_is_ignored_and_link_stays_up(hub: RunningHub) -> None:
    daemon = await hub.daemon()
    await daemon.send("FUTURE_THING", {"x": 1})
    await daemon.send("FUTURE_THING", {"x": 2})
    await daemon.send(MessageType.PING, {"nonce": "still-here"})
    pong = await daemon.next("PONG")
    assert pong["payload"]["nonce"] == "still-here"


async def test_invalid_payload_of_known_type_is_ignored(hub: RunningHub) -> None:
    daemon = await hub.daemon()
    await daemon.send(MessageType.COMMAND_ACK, {"commandId": "x"})
    await daemon.send(MessageType.PING, {"nonce": "alive"})
    assert (await daemon.next("PONG"))["payload"]["nonce"] == "alive"


async def test_reports_are_stored_and_update_the_daemon(hub: RunningHub) -> None:
    daemon = await hub.daemon()
    ts = "2026-01-01T00:00:00.000Z"
    report = {
        "revision": 4,
        "trigger": "desired_state",
        "startedAt": ts,
        "finishedAt": ts,
        "drift": False,
        "converged": True,
        "superseded": False,
        "integrations": [],
        "plugins": [{"name": "p", "version": "1", "connected": True}],
    }
    await daemon.send(MessageType.RECONCILIATION_REPORT, report)
    await daemon.send(MessageType.RECONCILIATION_REPORT, {**report, "trigger": "resend"})
    # The hub handles one daemon's messages in order: after the PONG both reports are stored.
    await daemon.send(MessageType.PING, {"nonce": "sync"})
    await daemon.next("PONG")
    _, body = await hub.call("GET", f"/v1/daemons/{daemon.daemon_id}/reports?limit=5")
    assert [r["trigger"] for r in body["reports"]] == ["resend", "desired_state"]
    _status, listing = await hub.call("GET", f"/v1/daemons/{daemon.daemon_id}")
    assert listing["lastAppliedRevision"] == 4
    assert listing["converged"] is True
    assert listing["lastReport"]["trigger"] == "resend"


async def test_hub_shutdown_closes_links_with_1012(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    daemon = await hub.daemon()
    await hub.server.stop()
    assert await daemon.closed() == 1012


async def test_repeated_terminal_ack_is_idempotent(hub: RunningHub) -> None:
    daemon = await hub.daemon(auto_ack=False)
    _, posted = await hub.call(
        "POST",
        f"/v1/daemons/{daemon.daemon_id}/commands",
        {"name": "x.run", "target": {"plugin": "p"}},
    )
    await daemon.next("COMMAND")
    await daemon.ack_command(posted["commandId"], "done", result={"ok": 1})
    await daemon.ack_command(posted["commandId"], "done", result={"ok": 1})
    await daemon.ack_command(
        posted["commandId"], "failed", error={"code": "TIMEOUT", "message": "late"}
    )
    await daemon.send(MessageType.PING, {"nonce": "sync"})
    await daemon.next("PONG")
    _status, record = await hub.call("GET", f"/v1/commands/{posted['commandId']}")
    assert record["state"] == "done"
    assert record["result"] == {"ok": 1}
    assert [a["state"] for a in record["acks"]] == ["done"]


async def test_a_burst_of_acks_is_recorded_in_order_for_every_command(
    hub_factory: HubFactory,
) -> None:
    # The link commits acks while it reads on; the two acks of a command keep their order.
    # Default heartbeats: this test is about ordering, and on a loaded machine a 100-command
    # burst can keep the loop busy past the 200 ms test heartbeat's dead-link bound.
    hub = await hub_factory(heartbeat_interval_ms=DEFAULT_HEARTBEAT_MS)
    daemon = await hub.daemon()
    path = f"/v1/daemons/{daemon.daemon_id}/commands?wait=10"
    body = {"name": "x.run", "target": {"plugin": "p"}, "params": {}}
    results = await asyncio.gather(*(hub.call("POST", path, body) for _ in range(100)))
    assert [status for status, _ in results] == [200] * 100
    for _status, record in results:
        assert record["state"] == "done"
        assert [a["state"] for a in record["acks"]] == ["accepted", "done"]
    assert sorted(daemon.executed.values()) == [1] * 100
