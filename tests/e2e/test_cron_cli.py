"""`clawgate cron …` and the scheduler in a real daemon: restarts, and kill -9 mid-run."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from clawgate.client import GatewayClient
from tests.e2e.test_cli import Daemon, run_cli, start_daemon, stop_daemon

TOKEN = "cron-cli-token-0123456789-abcdef"


def make_home(tmp_path: Path, echo_delay_ms: int = 0) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    config = home / "config.toml"
    config.write_text(
        f'[gateway]\ntimezone = "Europe/Berlin"\n\n[gateway.auth]\ntoken = "{TOKEN}"\n\n'
        f"[agent]\necho_delay_ms = {echo_delay_ms}\n"
    )
    config.chmod(0o600)
    return home


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    running = start_daemon(make_home(tmp_path))
    yield running
    if running.process.poll() is None:
        stop_daemon(running)


def cli(daemon: Daemon, *args: str) -> str:
    # Wide enough that rich tables keep each cell on one line.
    done = run_cli(daemon.home, "cron", *args, "--url", daemon.url, COLUMNS="200")
    assert done.returncode == 0, done.stderr
    return done.stdout


def jobs(daemon: Daemon) -> list[dict[str, Any]]:
    listing: list[dict[str, Any]] = json.loads(cli(daemon, "list", "--all", "--json"))["jobs"]
    return listing


def call(daemon: Daemon, method: str, params: Any = None) -> Any:
    async def ask() -> Any:
        async with GatewayClient(daemon.url, token=TOKEN, scopes=("operator.admin",)) as client:
            return await client.call(method, params)

    return asyncio.run(ask())


def test_add_with_zones_list_edit_run_and_remove(daemon: Daemon) -> None:
    added = cli(
        daemon,
        "add",
        "--name",
        "inbox",
        "--cron",
        "0 8 * * 1-5",
        "--tz",
        "America/New_York",
        "-m",
        "summarise my inbox",
    )
    assert added.startswith("added ") and "UTC (" in added and "America/New_York)" in added
    cli(daemon, "add", "--name", "standup", "--every", "30m", "--system-event", "stand up")
    cli(
        daemon,
        "add",
        "--name",
        "xmas",
        "--at",
        "2099-12-24T18:00",
        "-m",
        "merry",
        "--delete-after-run",
    )
    listed = {job["name"]: job for job in jobs(daemon)}
    assert listed["inbox"]["schedule"] == {
        "kind": "cron",
        "expr": "0 8 * * 1-5",
        "tz": "America/New_York",
    }
    assert listed["standup"]["schedule"]["everyMs"] == 1_800_000
    assert listed["standup"]["sessionTarget"] == "main"
    # A local time without an offset is read in the gateway's zone (Berlin, CET in December).
    berlin_evening = datetime(2099, 12, 24, 17, tzinfo=UTC)  # 18:00 CET
    assert listed["xmas"]["schedule"]["atMs"] == int(berlin_evening.timestamp() * 1000)
    table = cli(daemon, "list")
    assert "inbox" in table and "cron 0 8 * * 1-5" in table and "UTC" in table
    inbox = listed["inbox"]["id"]
    assert "updated" in cli(daemon, "edit", inbox[:8], "--disable")
    assert "inbox" not in cli(daemon, "list")
    assert cli(daemon, "run", inbox[:8]).startswith("started run ")
    deadline = time.monotonic() + 10
    while not json.loads(cli(daemon, "runs", inbox, "--json"))["entries"]:
        assert time.monotonic() < deadline, "the run never ended"
        time.sleep(0.1)
    assert "summarise my inbox" in cli(daemon, "runs", inbox)
    assert cli(daemon, "rm", inbox[:8]).startswith("removed ")
    assert len(json.loads(cli(daemon, "runs", inbox, "--json"))["entries"]) == 1
    status = json.loads(cli(daemon, "status", "--json"))
    assert status["jobs"] == 2 and status["timezone"] == "Europe/Berlin"


def test_mistakes_are_one_line_errors(daemon: Daemon) -> None:
    for args, says in (
        (("add", "--cron", "0 8 * *", "-m", "x"), "has 4 fields"),
        (("add", "--cron", "0 8 * * *", "--tz", "Mars/Base", "-m", "x"), "unknown time zone"),
        (("add", "--every", "soon", "-m", "x"), "--every 'soon' is not a duration"),
        (("add", "--at", "2099-03-29T02:30", "-m", "x"), "does not exist in Europe/Berlin"),
        (("add", "--every", "1h"), "say what the job does"),
        (("run", "nope"), "no cron job starts with 'nope'"),
    ):
        done = run_cli(daemon.home, "cron", *args, "--url", daemon.url)
        assert done.returncode != 0 and says in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1


def test_jobs_and_their_runs_survive_a_real_restart(tmp_path: Path) -> None:
    daemon = start_daemon(make_home(tmp_path))
    try:
        cli(daemon, "add", "--name", "daily", "--cron", "0 8 * * *", "-m", "good morning")
        (before,) = jobs(daemon)
        cli(daemon, "run", before["id"])
        time.sleep(0.5)
    finally:
        stop_daemon(daemon)
    daemon = start_daemon(daemon.home)
    try:
        (after,) = jobs(daemon)
        assert after["id"] == before["id"] and after["schedule"] == before["schedule"]
        assert after["state"]["nextRunAtMs"] == before["state"]["nextRunAtMs"]
        assert after["state"]["lastStatus"] == "ok"
        entries = json.loads(cli(daemon, "runs", after["id"], "--json"))["entries"]
        assert [entry["status"] for entry in entries] == ["ok"]
    finally:
        stop_daemon(daemon)


def test_a_run_cut_off_by_kill_9_is_interrupted_and_never_runs_twice(tmp_path: Path) -> None:
    # Forty words at 200 ms each: the run lasts eight seconds, long enough to be killed.
    daemon = start_daemon(make_home(tmp_path, echo_delay_ms=200))
    anchor = int(time.time() * 1000) + 1500
    try:
        job = call(
            daemon,
            "cron.add",
            {
                "name": "long",
                "schedule": {"kind": "every", "everyMs": 3_600_000, "anchorMs": anchor},
                "payload": {"kind": "agentTurn", "message": " ".join(["word"] * 40)},
            },
        )
        deadline = time.monotonic() + 10
        while "runningAtMs" not in jobs(daemon)[0]["state"]:
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.1)
    finally:
        daemon.process.kill()  # SIGKILL: no shutdown, the run is cut off
        daemon.process.communicate(timeout=15)
    daemon = start_daemon(daemon.home)
    try:
        time.sleep(1.5)  # a second run, if there were one, would start at once
        (after,) = jobs(daemon)
        assert after["state"]["lastStatus"] == "interrupted"
        assert "runningAtMs" not in after["state"]
        assert after["state"]["nextRunAtMs"] == anchor + 3_600_000
        entries = json.loads(cli(daemon, "runs", job["id"], "--json"))["entries"]
        assert [entry["status"] for entry in entries] == ["interrupted"]
        assert entries[0]["scheduledAtMs"] == anchor
        assert "stopped during this run" in entries[0]["error"]
    finally:
        stop_daemon(daemon)
