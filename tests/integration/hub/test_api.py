"""The operator HTTP API of the hub (control-plane spec §7.1)."""

from __future__ import annotations

import copy

from .conftest import MANIFEST, RunningHub, github_entry


async def test_operator_endpoints_need_the_admin_token(hub: RunningHub) -> None:
    key = await hub.new_key()
    for token in ("wrong-token", key):
        status, body = await hub.call("GET", "/v1/daemons", token=token)
        assert status == 401
        assert body["error"]["code"] == "UNAUTHORIZED"
        assert "Bearer" in body["error"]["message"]


async def test_health_and_readiness(hub: RunningHub) -> None:
    async with hub.http.get(hub.server.url + "/healthz") as response:
        assert response.status == 200
    async with hub.http.get(hub.server.url + "/readyz") as response:
        assert response.status == 200
        assert await response.json() == {"ok": True, "database": True, "bus": True}


async def test_keys_are_shown_once_and_listed_without_the_key(hub: RunningHub) -> None:
    status, created = await hub.call("POST", "/v1/keys", {"label": "laptop"})
    assert status == 201
    assert created["key"].startswith("cgk_")
    status, listing = await hub.call("GET", "/v1/keys")
    assert listing["keys"][0]["keyId"] == created["keyId"]
    assert "key" not in listing["keys"][0]
    assert created["key"] not in str(listing)
    status, revoked = await hub.call("DELETE", f"/v1/keys/{created['keyId']}")
    assert revoked["revokedAt"]
    status, _body = await hub.call("DELETE", "/v1/keys/key_nope")
    assert status == 404


async def test_desired_state_for_a_daemon_that_never_connected(hub: RunningHub) -> None:
    status, body = await hub.call(
        "PUT", "/v1/daemons/future-daemon/desired-state", {"integrations": [github_entry()]}
    )
    assert (status, body) == (200, {"revision": 1})
    status, desired = await hub.call("GET", "/v1/daemons/future-daemon/desired-state")
    entry = desired["integrations"][0]
    assert entry["secrets"] == ["token"]
    assert "ghp_supersecretvalue123" not in str(desired)
    assert desired["secretsAvailable"] is True
    status, listing = await hub.call("GET", "/v1/daemons")
    row = next(d for d in listing["daemons"] if d["daemonId"] == "future-daemon")
    assert row["connected"] is False
    assert row["desiredRevision"] == 1


async def test_revisions_increase_and_stale_if_revision_is_409(hub: RunningHub) -> None:
    path = "/v1/daemons/d1/desired-state"
    assert (await hub.call("PUT", path, {"integrations": []}))[1] == {"revision": 1}
    ok = await hub.call("PUT", path, {"integrations": [], "ifRevision": 1})
    assert ok == (200, {"revision": 2})
    status, body = await hub.call("PUT", path, {"integrations": [], "ifRevision": 1})
    assert status == 409
    assert body["error"]["code"] == "REVISION_CONFLICT"
    assert "revision 2" in body["error"]["message"]


async def test_invalid_desired_state_is_422_with_every_error(hub: RunningHub) -> None:
    bad_manifest = copy.deepcopy(MANIFEST)
    bad_manifest["version"] = "one"
    entries = [
        github_entry(config={"org": "acme", "token": "ghp_leakedintoconfig"}),
        {"id": "other", "version": "one", "manifest": bad_manifest, "config": {}},
        github_entry(id="github", config={"org": 5, "repos": 0}),
    ]
    status, body = await hub.call("PUT", "/v1/daemons/d2/desired-state", {"integrations": entries})
    assert status == 422
    assert body["error"]["code"] == "VALIDATION_FAILED"
    paths = {e["path"] for e in body["errors"]}
    assert "integrations[0].config.token" in paths
    assert "integrations[1].manifest.version" in paths
    assert "integrations[2].id" in paths
    assert "integrations[2].config.org" in paths
    assert "integrations[2].config.repos" in paths
    assert "ghp_leakedintoconfig" not in str(body)


async def test_secret_failing_schema_is_not_echoed(hub: RunningHub) -> None:
    manifest = copy.deepcopy(MANIFEST)
    manifest["config_schema"]["properties"]["token"]["minLength"] = 64
    entry = github_entry(manifest=manifest, secret="short-secret-value")
    status, body = await hub.call("PUT", "/v1/daemons/d3/desired-state", {"integrations": [entry]})
    assert status == 422
    assert body["errors"][0]["path"] == "integrations[0].secrets.token"
    assert "short-secret-value" not in str(body)


async def test_missing_required_secret_is_422(hub: RunningHub) -> None:
    entry = github_entry()
    del entry["secrets"]
    status, body = await hub.call("PUT", "/v1/daemons/d4/desired-state", {"integrations": [entry]})
    assert status == 422
    assert "'token' is a required property" in body["errors"][0]["message"]


async def test_bad_bodies_get_400_or_422(hub: RunningHub) -> None:
    async with hub.http.put(
        hub.server.url + "/v1/daemons/x/desired-state",
        data=b"{not json",
        headers={"Authorization": f"Bearer {hub.admin_token}"},
    ) as response:
        assert response.status == 400
    status, body = await hub.call("PUT", "/v1/daemons/x/desired-state", {"nope": 1})
    assert status == 422
    assert body["errors"][0]["path"] == "integrations"
    status, body = await hub.call("POST", "/v1/daemons/x/commands", {"name": "Bad!", "target": {}})
    assert status == 422
    assert {e["path"] for e in body["errors"]} >= {"name", "target"}
    status, body = await hub.call(
        "POST", "/v1/daemons/x/commands?wait=61", {"name": "a", "target": {"plugin": "p"}}
    )
    assert status == 400
    assert "wait" in body["error"]["message"]


async def test_command_wait_returns_200_when_acked(hub: RunningHub) -> None:
    daemon = await hub.daemon()
    status, record = await hub.call(
        "POST",
        f"/v1/daemons/{daemon.daemon_id}/commands?wait=5",
        {"name": "github.sync", "target": {"capability": "integrations"}, "params": {"a": 1}},
    )
    assert status == 200
    assert record["state"] == "done"
    assert record["terminal"] is True
    assert record["result"] == {"echo": {"a": 1}}
    assert [a["state"] for a in record["acks"]] == ["accepted", "done"]


async def test_command_wait_runs_out_with_202(hub: RunningHub) -> None:
    daemon = await hub.daemon(auto_ack=False)
    status, record = await hub.call(
        "POST",
        f"/v1/daemons/{daemon.daemon_id}/commands?wait=0.3",
        {"name": "slow.job", "target": {"plugin": "p"}},
    )
    assert status == 202
    assert record["state"] == "pending"
    await daemon.next("COMMAND")
    await daemon.ack_command(record["commandId"], "queued", queuePosition=0)
    status, later = await hub.call("GET", f"/v1/commands/{record['commandId']}?wait=0.3")
    assert later["state"] == "queued"
    assert later["acks"][0]["queuePosition"] == 0


async def test_idempotency_key_returns_the_existing_command(hub: RunningHub) -> None:
    body = {"name": "a.b", "target": {"plugin": "p"}, "idempotencyKey": "once"}
    _, first = await hub.call("POST", "/v1/daemons/d5/commands", body)
    _, second = await hub.call("POST", "/v1/daemons/d5/commands", body)
    _, other = await hub.call("POST", "/v1/daemons/d6/commands", body)
    assert first["commandId"] == second["commandId"]
    assert other["commandId"] != first["commandId"]


async def test_command_secrets_reach_the_daemon_but_never_the_api(hub: RunningHub) -> None:
    daemon = await hub.daemon(auto_ack=False)
    _, record = await hub.call(
        "POST",
        f"/v1/daemons/{daemon.daemon_id}/commands",
        {"name": "a.b", "target": {"plugin": "p"}, "secrets": {"pw": "hunter2-very-secret"}},
    )
    assert record["secrets"] == ["pw"]
    assert "hunter2-very-secret" not in str(record)
    command = await daemon.next("COMMAND")
    assert command["payload"]["secrets"] == {"pw": "hunter2-very-secret"}
    assert "expiresAt" in command["payload"]


async def test_unknown_things_are_404(hub: RunningHub) -> None:
    assert (await hub.call("GET", "/v1/daemons/nobody"))[0] == 404
    assert (await hub.call("GET", "/v1/daemons/nobody/reports"))[0] == 404
    status, body = await hub.call("GET", "/v1/commands/nothing")
    assert status == 404
    assert body["error"]["code"] == "NOT_FOUND"
