"""`cron.list` and `cron.runs` as OpenClaw's Control UI (automations page) calls and reads them."""

from __future__ import annotations

from typing import Any

import pytest

from clawgate.client import GatewayCallError
from tests.conftest import GatewayFactory
from tests.integration.conftest import Peer, PeerFactory
from tests.integration.test_cron import EVENT, add, admin, finished, start

# What the 2026.9.6 automations page sends (frame log).
UI_CRON_LIST = {
    "agentId": "main",
    "enabled": "all",
    "includeDeliveryPreviews": False,
    "includeDisabled": True,
    "lastRunStatus": "all",
    "limit": 50,
    "offset": 0,
    "scheduleKind": "all",
    "sortBy": "nextRunAtMs",
    "sortDir": "asc",
    "trigger": "all",
}
UI_CRON_RUNS = {
    "agentId": "main",
    "limit": 50,
    "offset": 0,
    "scope": "all",
    "sortDir": "desc",
    "status": "all",
}


async def cron_peer(factory: GatewayFactory, clients: PeerFactory) -> Peer:
    return await admin(clients, await start(factory))


async def ran(peer: Peer, jobs: int = 2, **fields: Any) -> list[dict[str, Any]]:
    """Add `jobs` jobs, run each once by hand, and return them."""
    made = [await add(peer, payload=EVENT, name=f"job {n}", **fields) for n in range(jobs)]
    for job in made:
        await peer.client.call("cron.run", {"id": job["id"]})
        await finished(peer)
    return made


async def names(peer: Peer, params: dict[str, Any]) -> list[str]:
    return [job["name"] for job in (await peer.client.call("cron.list", params))["jobs"]]


async def test_the_ui_cron_list_gets_a_valid_inventory_page(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    await add(peer, name="a")
    page = await peer.client.call("cron.list", UI_CRON_LIST)
    assert [j["name"] for j in page["jobs"]] == ["a"]
    assert (page["total"], page["offset"], page["limit"]) == (1, 0, 50)
    assert (page["hasMore"], page["nextOffset"]) == (False, None)
    assert page["snapshotRevision"].startswith("sha256:")


async def test_cron_list_pages_with_limit_and_offset(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    for n in range(3):
        await add(peer, every_ms=(n + 1) * 3_600_000, name=f"j{n}")
    first = await peer.client.call("cron.list", {"limit": 2})
    assert [j["name"] for j in first["jobs"]] == ["j0", "j1"]
    assert (first["hasMore"], first["nextOffset"]) == (True, 2)
    rest = await peer.client.call("cron.list", {"limit": 2, "offset": 2})
    assert [j["name"] for j in rest["jobs"]] == ["j2"]
    assert (rest["hasMore"], rest["nextOffset"]) == (False, None)
    assert first["snapshotRevision"] == rest["snapshotRevision"]


async def test_cron_list_snapshot_revision_changes_when_a_job_does(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    job = await add(peer, name="a")
    before = (await peer.client.call("cron.list"))["snapshotRevision"]
    await peer.client.call("cron.update", {"id": job["id"], "patch": {"name": "b"}})
    assert (await peer.client.call("cron.list"))["snapshotRevision"] != before


async def test_cron_list_enabled_filter_chooses_enabled_or_disabled_jobs(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    await add(peer, name="on")
    await add(peer, name="off", enabled=False)
    assert await names(peer, {"enabled": "disabled"}) == ["off"]
    assert await names(peer, {"enabled": "enabled", "includeDisabled": True}) == ["on"]
    assert sorted(await names(peer, {"enabled": "all"})) == ["off", "on"]


async def test_cron_list_agent_filter_lists_the_agents_jobs(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    await add(peer, name="a")
    assert await names(peer, {"agentId": "main"}) == ["a"]
    assert await names(peer, {"agentId": "other"}) == []


async def test_cron_list_query_matches_names(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    await add(peer, name="Morning digest")
    await add(peer, name="backup")
    assert await names(peer, {"query": "DIGEST"}) == ["Morning digest"]


async def test_cron_list_schedule_kind_filter(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    await add(peer, name="every")
    assert await names(peer, {"scheduleKind": "every"}) == ["every"]
    assert await names(peer, {"scheduleKind": "cron"}) == []


async def test_cron_list_last_run_status_filter(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    await ran(peer, jobs=1)
    await add(peer, name="never")
    assert await names(peer, {"lastRunStatus": "ok"}) == ["job 0"]
    assert await names(peer, {"lastRunStatus": "unknown"}) == ["never"]


async def test_cron_list_conditional_trigger_lists_nothing(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    await add(peer, name="a")
    assert await names(peer, {"trigger": "conditional"}) == []
    assert await names(peer, {"trigger": "unconditional"}) == ["a"]


async def test_the_ui_cron_runs_lists_every_jobs_runs_newest_first(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    made = await ran(peer)
    page = await peer.client.call("cron.runs", UI_CRON_RUNS)
    assert [e["jobId"] for e in page["entries"]] == [made[1]["id"], made[0]["id"]]
    assert [e["jobName"] for e in page["entries"]] == ["job 1", "job 0"]
    assert (page["total"], page["hasMore"], page["nextOffset"]) == (2, False, None)


async def test_cron_runs_without_a_job_id_lists_every_jobs_runs(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    await ran(peer)
    assert len((await peer.client.call("cron.runs", {}))["entries"]) == 2


async def test_cron_runs_agent_filter_lists_only_that_agents_jobs_runs(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    await ran(peer)
    assert (await peer.client.call("cron.runs", {"agentId": "other"}))["entries"] == []
    assert len((await peer.client.call("cron.runs", {"agentId": "main"}))["entries"]) == 2


async def test_cron_runs_pages_with_offset(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    made = await ran(peer)
    first = await peer.client.call("cron.runs", {"scope": "all", "limit": 1})
    assert (first["hasMore"], first["nextOffset"]) == (True, 1)
    second = await peer.client.call("cron.runs", {"scope": "all", "limit": 1, "offset": 1})
    assert [e["jobId"] for e in second["entries"]] == [made[0]["id"]]
    assert (second["hasMore"], second["nextOffset"]) == (False, None)


async def test_cron_runs_sort_dir_asc_lists_oldest_first(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    made = await ran(peer)
    page = await peer.client.call("cron.runs", {"sortDir": "asc"})
    assert [e["jobId"] for e in page["entries"]] == [made[0]["id"], made[1]["id"]]


@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({"status": "ok"}, 2),
        ({"status": "error"}, 0),
        ({"statuses": ["error", "skipped"]}, 0),
        ({"statuses": ["ok"]}, 2),
    ],
)
async def test_cron_runs_status_filters(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    params: dict[str, Any],
    count: int,
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    await ran(peer)
    assert len((await peer.client.call("cron.runs", params))["entries"]) == count


async def test_cron_runs_run_id_finds_one_run(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    await ran(peer)
    some = (await peer.client.call("cron.runs", {}))["entries"][1]
    found = await peer.client.call("cron.runs", {"runId": some["runId"]})
    assert [e["runId"] for e in found["entries"]] == [some["runId"]]


async def test_cron_runs_with_an_id_still_reads_one_job(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    made = await ran(peer)
    page = await peer.client.call("cron.runs", {"id": made[0]["id"]})
    assert [e["jobId"] for e in page["entries"]] == [made[0]["id"]]


async def test_cron_runs_scope_job_without_an_id_is_invalid(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call("cron.runs", {"scope": "job"})
    assert caught.value.code == "INVALID_REQUEST"


async def test_cron_runs_before_any_job_is_an_empty_page(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    page = await peer.client.call("cron.runs", UI_CRON_RUNS)
    assert (page["entries"], page["total"], page["hasMore"]) == ([], 0, False)


async def test_cron_runs_still_refuses_a_property_no_schema_defines(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    peer = await cron_peer(gateway_factory, client_factory)
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call("cron.runs", {"scope": "all", "since": 0})
    assert caught.value.code == "INVALID_REQUEST"
