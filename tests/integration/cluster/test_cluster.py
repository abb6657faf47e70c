"""Several hub instances on one PostgreSQL and one NATS, behind a balancer (spec §7.2)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp

from clawgate.hub import HubServer, LocalBus
from tests.e2e.test_cli import CLAWGATE, env_for
from tests.fakes.hub_daemon import SimDaemon
from tests.integration.hub.conftest import RunningHub, github_entry, hub_settings
from tests.servers import NatsServer

from .conftest import Cluster, ClusterFactory

COMMAND = {"name": "a.b", "target": {"plugin": "p"}, "params": {"n": 1}}


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.05)


async def call(url: str, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, url + path, json=body, headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        return response.status, await response.json()


async def daemon_on(cluster: Cluster, index: int, **options: Any) -> SimDaemon:
    """Register a daemon on instance ``index`` (directly, not through the balancer)."""
    return await cluster.hubs[index].daemon(**options)


async def test_a_command_posted_to_b_reaches_the_daemon_on_a(
    cluster_factory: ClusterFactory,
) -> None:
    cluster = await cluster_factory(2)
    b = cluster.hubs[1]
    daemon = await daemon_on(cluster, 0)
    status, record = await b.call(
        "POST", f"/v1/daemons/{daemon.daemon_id}/commands?wait=10", COMMAND
    )
    assert status == 200, record
    assert record["state"] == "done"
    assert record["result"] == {"echo": {"n": 1}}
    assert daemon.executed == {record["commandId"]: 1}


async def test_desired_state_put_via_c_reaches_the_daemon_on_a(
    cluster_factory: ClusterFactory,
) -> None:
    cluster = await cluster_factory(3)
    daemon = await daemon_on(cluster, 0)
    await daemon.next("DESIRED_STATE")
    status, body = await cluster.hubs[2].call(
        "PUT",
        f"/v1/daemons/{daemon.daemon_id}/desired-state",
        {"integrations": [github_entry()]},
    )
    assert (status, body) == (200, {"revision": 1})
    desired = await daemon.next("DESIRED_STATE")
    assert desired["payload"]["revision"] == 1
    # Sealed by C with the shared key, opened by A.
    assert desired["payload"]["integrations"][0]["secrets"] == {"token": "ghp_supersecretvalue123"}


async def test_a_reconnect_on_another_instance_makes_the_old_one_let_go(
    cluster_factory: ClusterFactory,
) -> None:
    cluster = await cluster_factory(2)
    key = await cluster.hubs[0].new_key()
    first = await daemon_on(cluster, 0, key=key)
    second = await daemon_on(cluster, 1, key=key, daemon_id=first.daemon_id)
    assert await first.closed() == 4409
    _, shown = await cluster.hubs[0].call("GET", f"/v1/daemons/{first.daemon_id}")
    assert shown["connected"] is True
    assert shown["sessionId"] == second.ack["payload"]["sessionId"]  # type: ignore[index]
    # Commands now go to the new session, whichever instance takes them.
    status, record = await cluster.hubs[0].call(
        "POST", f"/v1/daemons/{first.daemon_id}/commands?wait=10", COMMAND
    )
    assert (status, record["state"]) == (200, "done")
    assert record["commandId"] in second.executed and not first.executed


async def test_every_instance_shows_a_daemon_held_by_another_as_connected(
    cluster_factory: ClusterFactory,
) -> None:
    cluster = await cluster_factory(3)
    daemon = await daemon_on(cluster, 1)
    for hub in cluster.hubs:
        status, listing = await hub.call("GET", "/v1/daemons")
        assert status == 200
        [shown] = listing["daemons"]
        assert (shown["daemonId"], shown["connected"]) == (daemon.daemon_id, True)


async def test_the_api_and_cli_work_unchanged_through_the_balancer(
    cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    cluster = await cluster_factory(3)
    token, url = cluster.admin_token, cluster.url
    status, created = await call(url, token, "POST", "/v1/keys", {"label": "lb"})
    assert status == 201
    daemons = [SimDaemon(cluster.link_url, created["key"]) for _ in range(3)]
    for daemon in daemons:
        assert await daemon.connect() is not None
    try:
        held = [len(h.server.core.held) for h in cluster.hubs]
        assert held == [1, 1, 1]  # round robin put one on each instance
        home = tmp_path / "cli"
        home.mkdir(mode=0o700)
        env = env_for(home, CLAWGATE_HUB_ADMIN_TOKEN=token)
        for daemon in daemons:
            proc = await asyncio.create_subprocess_exec(
                *CLAWGATE,
                "hub",
                "command",
                daemon.daemon_id,
                "a.b",
                "--target",
                "plugin=p",
                "--wait",
                "30",  # generous: a loaded CI machine is slow, and a pass returns at once
                "--json",
                "--url",
                url,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 60)
            assert proc.returncode == 0, err.decode()
            assert json.loads(out)["state"] == "done"
        proc = await asyncio.create_subprocess_exec(
            *CLAWGATE,
            "hub",
            "daemons",
            "--json",
            "--url",
            url,
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        listing = json.loads(out)["daemons"]
        assert sorted(d["daemonId"] for d in listing if d["connected"]) == sorted(
            d.daemon_id for d in daemons
        )
    finally:
        for daemon in daemons:
            await daemon.close()


async def test_a_key_revoked_on_a_closes_its_links_on_b(cluster_factory: ClusterFactory) -> None:
    cluster = await cluster_factory(2)
    status, created = await cluster.hubs[0].call("POST", "/v1/keys", {"label": "doomed"})
    assert status == 201
    daemon = await daemon_on(cluster, 1, key=created["key"])
    await cluster.hubs[0].call("DELETE", f"/v1/keys/{created['keyId']}")
    assert await daemon.closed() == 4401


async def test_a_lost_takeover_notice_is_repaired_by_the_sweep(
    cluster_factory: ClusterFactory, tmp_path: Path, pg_url: str
) -> None:
    cluster = await cluster_factory(1)
    first = await daemon_on(cluster, 0)
    # A second instance on the same database whose bus reaches no one: its notices are lost.
    home = tmp_path / "deaf"
    home.mkdir(mode=0o700)
    settings = replace(
        hub_settings(home, admin_token=cluster.admin_token, secrets_key=cluster.secrets_key),
        database_url=pg_url,
    )
    deaf = HubServer(settings, bus=LocalBus())
    await deaf.start()
    running = RunningHub(deaf, aiohttp.ClientSession(), home)
    try:
        second = await running.daemon(key=first.key, daemon_id=first.daemon_id)
        assert await first.closed() == 4409  # by the 0.5 s sweep, not by a notice
        metrics = cluster.hubs[0].server.core.metrics
        assert metrics.sweep_repairs.labels("takeover")._value.get() == 1
        # A command posted to the deaf instance reaches nobody by hint; the sweep of the
        # instance holding the daemon delivers it.
        status, record = await cluster.hubs[0].call(
            "POST", f"/v1/daemons/{first.daemon_id}/commands?wait=10", COMMAND
        )
        assert (status, record["state"]) == (200, "done")
        assert record["commandId"] in second.executed
        await second.close()
    finally:
        await deaf.stop()
        await running.http.close()


async def test_a_killed_instances_daemons_turn_offline(cluster_factory: ClusterFactory) -> None:
    cluster = await cluster_factory(2)
    daemon = await daemon_on(cluster, 0)
    core = cluster.hubs[0].server.core
    core.held.clear()  # a crash: no close, no more heartbeats
    await cluster.hubs[0].server._cleanup()

    async def offline() -> bool:
        _, shown = await cluster.hubs[1].call("GET", f"/v1/daemons/{daemon.daemon_id}")
        return shown["connected"] is False

    started = time.monotonic()
    await until(offline)
    assert time.monotonic() - started < 10


async def test_readyz_fails_while_the_bus_is_down_and_recovers(tmp_path: Path, pg_url: str) -> None:
    nats = NatsServer()
    nats.start()
    home = tmp_path / "h"
    home.mkdir(mode=0o700)
    settings = replace(hub_settings(home, secrets_key=b"k" * 32), database_url=pg_url)
    server = HubServer(replace(settings, bus_url=nats.url))
    await server.start()
    try:
        assert (await call(server.url, "", "GET", "/readyz"))[0] == 200
        nats.kill()
        status, body = await call(server.url, "", "GET", "/readyz")
        assert (status, body["bus"], body["database"]) == (503, False, True)
        nats.start()

        async def ready() -> bool:
            return (await call(server.url, "", "GET", "/readyz"))[0] == 200

        await until(ready, 20)
    finally:
        await server.stop()
        nats.cleanup()


async def test_readyz_fails_while_postgres_is_down(
    cluster_factory: ClusterFactory, pg_server: Any
) -> None:
    cluster = await cluster_factory(1)
    hub = cluster.hubs[0]
    pg_server.kill()
    try:
        status, body = await call(hub.server.url, "", "GET", "/readyz")
        assert (status, body["database"], body["bus"]) == (503, False, True)
    finally:
        pg_server.start()

    async def ready() -> bool:
        return (await call(hub.server.url, "", "GET", "/readyz"))[0] == 200

    await until(ready, 20)


async def test_metrics_show_held_daemons_and_bus_lag_per_instance(
    cluster_factory: ClusterFactory,
) -> None:
    cluster = await cluster_factory(2)
    daemon = await daemon_on(cluster, 0)
    status, _ = await cluster.hubs[1].call(
        "POST", f"/v1/daemons/{daemon.daemon_id}/commands?wait=10", COMMAND
    )
    assert status == 200
    texts = []
    for hub in cluster.hubs:
        async with hub.http.get(hub.server.url + "/metrics") as response:
            assert response.status == 200
            texts.append(await response.text())
    assert "clawgate_hub_held_daemons 1.0" in texts[0]
    assert "clawgate_hub_held_daemons 0.0" in texts[1]
    # A's link got the command hint from B; B's waiting request got the ack hint from A.
    for text in texts:
        count = next(
            line
            for line in text.splitlines()
            if line.startswith("clawgate_hub_bus_lag_seconds_count")
        )
        assert float(count.split()[1]) >= 1
