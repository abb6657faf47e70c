"""hub.db: one hub per database, secrets never in plaintext, restarts keep state."""

from __future__ import annotations

import base64
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from clawgate.files import running_pid
from clawgate.hub import HubLocked, HubServer, HubStoreError

from .conftest import HubFactory, github_entry, hub_settings

SECRET = "ghp_topsecret_should_never_hit_disk"
COMMAND_SECRET = "cmd-secret-never-on-disk"


def disk_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.iterdir() if p.is_file())


async def test_second_hub_on_the_same_db_is_refused(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    second = HubServer(hub_settings(hub.home))
    with pytest.raises(HubLocked) as caught:
        await second.start()
    assert "another hub" in str(caught.value)
    assert "--db" in str(caught.value)


async def test_a_file_that_is_not_a_database_is_refused_and_frees_the_lock(
    tmp_path: Path,
) -> None:
    (tmp_path / "hub.db").write_bytes(b"not a database, just bytes" * 100)
    with pytest.raises(HubStoreError) as caught:
        await HubServer(hub_settings(tmp_path)).start()
    assert f"cannot open {tmp_path / 'hub.db'}" in str(caught.value)
    assert running_pid(tmp_path / "hub.db.lock") is None


async def test_a_stopped_hub_frees_the_lock(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    assert running_pid(hub.home / "hub.db.lock") == os.getpid()
    await hub.server.stop()
    assert running_pid(hub.home / "hub.db.lock") is None


@pytest.mark.parametrize("with_key", [False, True])
async def test_secrets_never_reach_disk_or_logs(
    hub_factory: HubFactory, caplog: pytest.LogCaptureFixture, with_key: bool
) -> None:
    caplog.set_level(logging.DEBUG)
    key = os.urandom(32) if with_key else None
    hub = await hub_factory(secrets_key=key)
    daemon = await hub.daemon()
    await hub.call(
        "PUT",
        f"/v1/daemons/{daemon.daemon_id}/desired-state",
        {"integrations": [github_entry(secret=SECRET)]},
    )
    await hub.call(
        "POST",
        f"/v1/daemons/{daemon.daemon_id}/commands?wait=5",
        {"name": "a.b", "target": {"plugin": "p"}, "secrets": {"pw": COMMAND_SECRET}},
    )
    desired = await daemon.next("DESIRED_STATE")
    while desired["payload"]["revision"] != 1:
        desired = await daemon.next("DESIRED_STATE")
    assert desired["payload"]["integrations"][0]["secrets"] == {"token": SECRET}
    await daemon.close()
    await hub.server.stop()
    stored = disk_bytes(hub.home)
    assert SECRET.encode() not in stored
    assert COMMAND_SECRET.encode() not in stored
    assert SECRET not in caplog.text
    assert COMMAND_SECRET not in caplog.text
    assert ("secret values are held in memory only" in caplog.text) is not with_key


async def test_encrypted_secrets_survive_a_restart(hub_factory: HubFactory) -> None:
    key = os.urandom(32)
    hub = await hub_factory(secrets_key=key)
    await hub.call(
        "PUT", "/v1/daemons/d1/desired-state", {"integrations": [github_entry(secret=SECRET)]}
    )
    await hub.server.stop()
    again = await hub_factory(hub.home, secrets_key=key)
    daemon = await again.daemon(daemon_id="d1")
    desired = await daemon.next("DESIRED_STATE")
    assert desired["payload"]["revision"] == 1
    assert desired["payload"]["integrations"][0]["secrets"] == {"token": SECRET}


async def test_memory_secrets_are_lost_on_restart_and_said_so(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.call(
        "PUT", "/v1/daemons/d1/desired-state", {"integrations": [github_entry(secret=SECRET)]}
    )
    await hub.server.stop()
    again = await hub_factory(hub.home)
    _, view = await again.call("GET", "/v1/daemons/d1/desired-state")
    assert view["revision"] == 1
    assert view["secretsAvailable"] is False
    daemon = await again.daemon(daemon_id="d1")
    desired = await daemon.next("DESIRED_STATE")
    assert "secrets" not in desired["payload"]["integrations"][0]


async def test_wrong_secrets_key_cannot_open_sealed_values(hub_factory: HubFactory) -> None:
    hub = await hub_factory(secrets_key=os.urandom(32))
    await hub.call(
        "PUT", "/v1/daemons/d1/desired-state", {"integrations": [github_entry(secret=SECRET)]}
    )
    await hub.server.stop()
    again = await hub_factory(hub.home, secrets_key=os.urandom(32))
    _, view = await again.call("GET", "/v1/daemons/d1/desired-state")
    assert view["secretsAvailable"] is False
    assert base64.b64encode(SECRET.encode()) not in disk_bytes(hub.home)


async def test_db_files_are_private(hub_factory: HubFactory) -> None:
    hub = await hub_factory()
    await hub.call("PUT", "/v1/daemons/d1/desired-state", {"integrations": []})
    assert (hub.home / "hub.db").stat().st_mode & 0o077 == 0


async def test_issuing_a_command_finds_the_next_seq_through_its_index(
    hub_factory: HubFactory,
) -> None:
    # A full index scan per command would grow with every command the hub ever issued.
    hub = await hub_factory()
    await hub.server.stop()
    conn = sqlite3.connect(hub.home / "hub.db")
    try:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT COALESCE(MAX(seq), 0) + 1 FROM commands"
        ).fetchall()
    finally:
        conn.close()
    assert "commands_by_seq" in " ".join(str(row[-1]) for row in plan)
    assert not any(str(row[-1]).startswith("SCAN") for row in plan)


def test_a_single_sqlite_hub_loads_neither_asyncpg_nor_nats(tmp_path: Path) -> None:
    script = f"""
import asyncio, sys
from pathlib import Path
from clawgate.hub import HubServer, HubSettings

async def main():
    settings = HubSettings(config_path=Path({str(tmp_path)!r}) / "hub.toml",
                           db_path=Path({str(tmp_path)!r}) / "hub.db",
                           admin_token="x" * 32, port=0)
    server = HubServer(settings)
    await server.start()
    await server.stop()

asyncio.run(main())
print(sorted(m for m in sys.modules if m.split(".")[0] in ("asyncpg", "nats")))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
