"""Fault tests of the control link with real processes (issue 5 point 6, issue 4 point 7).

Hub, daemon and plugin are subprocesses; a seeded TCP proxy in this process cuts and delays
the link where a test needs it. Commands go in through the hub's operator API and must each
end with exactly one terminal ack, run at most once, and never go missing. The plugin
(``tests.fakes.fault_plugin``) logs every delivery, so a command the daemon hands over twice
is seen even though the plugin's own at-most-once check would hide a second run. Each test
prints one line: ``sent= acked= executed= duplicates= lost=``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.link_stack import (
    HubProcess,
    PluginProcess,
    cli,
    configure_linked,
    eventually,
    kill_gateway,
    read_jsonl,
    start_gateway,
)
from tests.fakes.tcp_proxy import TcpProxy

#: Each command's own budget for reaching a terminal ack, retries included.
COMMAND_DEADLINE_S = 45.0
SECRET = "fault-test-secret-value-31337"


@dataclass
class Stack:
    """One hub, one daemon home and one plugin root; processes started by the test."""

    hub: HubProcess
    home: Path
    root: Path
    plugin: PluginProcess
    key: str = ""


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    hub = HubProcess(tmp_path / "hub")
    home = tmp_path / "daemon"
    root = tmp_path / "plugin-root"
    made = Stack(hub, home, root, PluginProcess(home, root))
    await hub.start()
    try:
        made.key = await hub.new_key()
        yield made
    finally:
        await made.plugin.stop()
        await cli(home, "gateway", "stop")
        await hub.stop()


def link_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}/v1/daemon"


@dataclass
class CommandRun:
    """Commands sent through the operator API, each retried until it ends."""

    hub: HubProcess
    daemon_id: str
    tag: str
    records: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return sum(1 for r in self.records.values() if r is not None and r["terminal"])

    def body(self, index: int) -> tuple[str, dict[str, Any]]:
        """Return command ``index``'s key and POST body (``dir.touch`` on the plugin)."""
        key = f"{self.tag}-{index:04d}"
        return key, {
            "name": "dir.touch",
            "target": {"plugin": "dir-integrations"},
            "params": {"name": key, "content": key},
            # The operator's retry key: a POST whose answer was lost is sent again safely.
            "idempotencyKey": key,
            "expiresInMs": 600_000,
        }

    async def one(self, index: int) -> None:
        """Issue command ``index`` and follow it to its terminal ack, riding out hub restarts."""
        key, body = self.body(index)
        self.records[key] = None
        record: dict[str, Any] | None = None
        deadline = time.monotonic() + COMMAND_DEADLINE_S
        while time.monotonic() < deadline:
            try:
                if record is None:
                    # No wait: the answer proves the hub persisted it; then follow it.
                    path = f"/v1/daemons/{self.daemon_id}/commands"
                    status, answer = await self.hub.call("POST", path, body)
                else:
                    path = f"/v1/commands/{record['commandId']}?wait=10"
                    status, answer = await self.hub.call("GET", path)
            except (aiohttp.ClientError, OSError, TimeoutError):
                await asyncio.sleep(0.2)  # the hub is down or restarting
                continue
            if status not in (200, 202):
                await asyncio.sleep(0.2)
                continue
            record = answer
            self.records[key] = record
            if record["terminal"]:
                return

    async def send(self, count: int, in_flight: int) -> None:
        """Send ``count`` commands with ``in_flight`` outstanding at any time."""
        indexes = iter(range(count))

        async def worker() -> None:
            for index in indexes:
                await self.one(index)

        async with asyncio.TaskGroup() as group:
            for _ in range(in_flight):
                group.create_task(worker())


@dataclass
class Tally:
    sent: int
    acked: int
    executed: int
    duplicates: int
    lost: int
    redelivered: int

    def line(self, name: str, **extra: object) -> str:
        fields = " ".join(f"{k}={v}" for k, v in extra.items())
        return (
            f"[link-faults {name}] sent={self.sent} acked={self.acked} executed={self.executed}"
            f" duplicates={self.duplicates} lost={self.lost} redelivered={self.redelivered}"
            + (f" {fields}" if fields else "")
        )


def tally(run: CommandRun, root: Path, *, redelivery_allowed: bool = False) -> Tally:
    """Count what the hub acked against what the plugin was handed and ran.

    A second delivery is a duplicate unless ``redelivery_allowed`` (the daemon died while
    the command ran) and it carries ``attempt`` >= 2, as spec §4.1 requires.
    """
    deliveries: dict[str, list[int]] = defaultdict(list)
    for line in read_jsonl(root / ".deliveries"):
        deliveries[line["commandId"]].append(int(line["attempt"]))
    runs = Counter(line["commandId"] for line in read_jsonl(root / ".executed"))
    done = {r["commandId"] for r in run.records.values() if r is not None and r["state"] == "done"}
    ids = {r["commandId"] for r in run.records.values() if r is not None}
    duplicates = 0
    redelivered = 0
    for command_id in ids:
        attempts = deliveries.get(command_id, [])
        redelivered += max(0, len(attempts) - 1)
        bad_redelivery = any(
            not redelivery_allowed or later < 2 or later <= earlier
            for earlier, later in pairwise(attempts)
        )
        if runs[command_id] > 1 or bad_redelivery:
            duplicates += 1
    return Tally(
        sent=len(run.records),
        acked=len(done),
        executed=sum(1 for command_id in ids if runs[command_id]),
        duplicates=duplicates,
        lost=len(run.records) - len(done & set(runs)),
        redelivered=redelivered,
    )


def check(result: Tally, run: CommandRun, root: Path) -> None:
    """Assert nothing was lost, run twice, or acked with a result the plugin never gave."""
    unfinished = [r for r in run.records.values() if r is None or r["state"] != "done"]
    assert result.duplicates == 0, result
    assert result.lost == 0, (result, unfinished[:3])
    assert result.acked == result.sent == result.executed, result
    assert len({r["commandId"] for r in run.records.values() if r}) == result.sent
    given = {line["commandId"]: line["result"] for line in read_jsonl(root / ".executed")}
    for record in run.records.values():
        assert record is not None and record["result"] == given[record["commandId"]], record
        assert (root / "touched" / str(record["idempotencyKey"])).exists()


def summary(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """Print the summary line to the real terminal, even when pytest captures output."""
    with capsys.disabled():
        print(f"\n{line}", flush=True)


async def wait_plugin(home: Path) -> None:
    async def registered() -> bool:
        listed = await cli(home, "plugins", "--json")
        return listed.code == 0 and "dir-integrations" in listed.out

    await eventually(registered, 20, "the plugin to register with the daemon")


async def when(condition: Callable[[], bool], timeout: float, what: str) -> None:
    async def check() -> bool:
        return condition()

    await eventually(check, timeout, what)


async def test_commands_survive_a_link_that_is_cut_and_delayed_at_random(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = TcpProxy(stack.hub.port, seed=5150, max_delay_s=0.01)
    await proxy.start()
    try:
        configure_linked(stack.home, link_url(proxy.port), stack.key)
        await start_gateway(stack.home)
        await stack.plugin.start()
        daemon_id = await stack.hub.only_daemon()
        await wait_plugin(stack.home)
        # Cuts start now. Each one raises the daemon's backoff ceiling (1, 2, 4, 8 s: spec
        # §3.7), so four of them keep the test bounded; 500 commands move ~1 MB, so cuts
        # every 20-120 kB land throughout the run.
        proxy.cut_after_bytes = (20_000, 120_000)
        proxy.max_cuts = 4
        run = CommandRun(stack.hub, daemon_id, "cut")
        await run.send(500, in_flight=20)
    finally:
        await proxy.stop()
    result = tally(run, stack.root)
    summary(capsys, result.line("proxy", cuts=proxy.cuts, connections=proxy.connections))
    check(result, run, stack.root)
    assert proxy.cuts == 4


async def test_commands_survive_the_hub_killed_and_restarted_mid_stream(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_linked(stack.home, link_url(stack.hub.port), stack.key)
    await start_gateway(stack.home)
    await stack.plugin.start()
    daemon_id = await stack.hub.only_daemon()
    await wait_plugin(stack.home)
    run = CommandRun(stack.hub, daemon_id, "kill")
    sending = asyncio.create_task(run.send(500, in_flight=20))
    await when(lambda: run.finished >= 150 or sending.done(), 30, "150 commands to finish")
    assert not sending.done(), "all commands finished before the hub could be killed"
    await stack.hub.kill()
    # Commands in flight when it died: accepted but not yet seen to end, or still being
    # posted (on a loaded machine all 20 workers can be between POST and answer at once).
    unsettled = sum(1 for r in run.records.values() if r is None or not r["terminal"])
    await stack.hub.start()
    await sending
    result = tally(run, stack.root)
    summary(capsys, result.line("hub-kill", unsettled_at_kill=unsettled))
    check(result, run, stack.root)
    assert unsettled > 0, "the kill did not catch any command in flight"


async def test_the_daemon_killed_mid_reconcile_converges_after_restart(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.plugin.args = ("--step-delay", "0.1", "--exec-delay", "0.3")
    configure_linked(stack.home, link_url(stack.hub.port), stack.key)
    await start_gateway(stack.home)
    await stack.plugin.start()
    daemon_id = await stack.hub.only_daemon()
    await wait_plugin(stack.home)
    ids = [f"item-{n:02d}" for n in range(12)]
    entries = []
    for n, item in enumerate(ids):
        depends = [ids[n - 1]] if n % 3 else []  # three chains of four
        entries.append(
            {
                "id": item,
                "version": "1.0.0",
                "enabled": True,
                "manifest": {
                    "id": item,
                    "version": "1.0.0",
                    "name": item,
                    "depends_on": depends,
                    "config_schema": {
                        "type": "object",
                        "properties": {"token": {"type": "string", "x-secret": True}},
                    },
                },
                "config": {},
                "secrets": {"token": SECRET},
            }
        )
    status, body = await stack.hub.call(
        "PUT", f"/v1/daemons/{daemon_id}/desired-state", {"integrations": entries}
    )
    assert status == 200 and body["revision"] == 1, body
    run = CommandRun(stack.hub, daemon_id, "crash")
    sending = asyncio.create_task(run.send(60, in_flight=6))
    journal = stack.root / ".journal"
    await when(lambda: len(read_jsonl(journal)) >= 6, 20, "the reconcile pass to be under way")
    await kill_gateway(stack.home)
    steps_at_kill = len(read_jsonl(journal))
    assert steps_at_kill < 2 * len(ids), "the pass finished before the kill"
    await start_gateway(stack.home)
    record = await stack.hub.converged_at(daemon_id, 1, timeout=40)
    await sending
    statuses = {row["id"]: row["status"] for row in record["lastReport"]["integrations"]}
    assert statuses == dict.fromkeys(ids, "active")
    assert all((stack.root / item / "ACTIVE").exists() for item in ids)
    result = tally(run, stack.root, redelivery_allowed=True)
    summary(capsys, result.line("daemon-kill-mid-reconcile", steps_at_kill=steps_at_kill))
    check(result, run, stack.root)
    assert result.redelivered > 0, "no command was in flight at the plugin when the daemon died"
    await cli(stack.home, "gateway", "stop")
    for path in stack.home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


async def queue_in_order(run: CommandRun, count: int) -> list[str]:
    """POST ``count`` commands, each queued at the daemon before the next; return their ids."""
    order = []
    for index in range(count):
        key, body = run.body(index)
        path = f"/v1/daemons/{run.daemon_id}/commands"
        status, record = await run.hub.call("POST", path, body)
        assert status == 202, record

        async def queued(command_id: str = record["commandId"]) -> bool:
            _, now = await run.hub.call("GET", f"/v1/commands/{command_id}")
            return bool(now["state"] == "queued")

        await eventually(queued, 10, f"command {index} to be queued at the daemon")
        order.append(record["commandId"])
        run.records[key] = record
    return order


async def test_queued_commands_survive_a_daemon_kill_and_run_once_in_order(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_linked(stack.home, link_url(stack.hub.port), stack.key)
    await start_gateway(stack.home)
    daemon_id = await stack.hub.only_daemon()
    run = CommandRun(stack.hub, daemon_id, "queued")
    order = await queue_in_order(run, 30)
    await kill_gateway(stack.home)
    await start_gateway(stack.home)
    depth = await cli(stack.home, "gateway", "status", "--json")
    assert '"queueDepth": 30' in depth.out or '"queueDepth":30' in depth.out, depth.out
    await stack.plugin.start()
    await asyncio.gather(*(run.one(index) for index in range(30)))
    result = tally(run, stack.root)
    summary(capsys, result.line("daemon-kill-queued"))
    check(result, run, stack.root)
    delivered = [line["commandId"] for line in read_jsonl(stack.root / ".deliveries")]
    assert delivered == order


async def test_a_wrong_api_key_stops_retrying_and_status_says_login_required(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = TcpProxy(stack.hub.port)
    await proxy.start()
    wrong = "cgk_wrong-key-that-must-not-leak-2718"
    try:
        configure_linked(stack.home, link_url(proxy.port), wrong)
        await start_gateway(stack.home)
        await when(lambda: proxy.connections >= 1, 20, "the first upgrade attempt")
        await asyncio.sleep(3)  # a retry storm would show many attempts in this window
        attempts = proxy.connections
    finally:
        await proxy.stop()
    status = await cli(stack.home, "gateway", "status")
    summary(
        capsys,
        f"[link-faults wrong-key] sent=0 acked=0 executed=0 duplicates=0 lost=0"
        f" upgrade_attempts={attempts} window_s=3",
    )
    assert attempts <= 2
    assert status.code == 0, status.err
    assert "login required" in status.out
    assert "auth.api_key" in status.out  # the hint says how to fix it
    await cli(stack.home, "gateway", "stop")
    for path in stack.home.rglob("*"):
        if path.is_file() and path.name != "config.toml":
            assert wrong.encode() not in path.read_bytes(), path


async def test_a_full_queue_drained_across_a_daemon_kill_loses_nothing_and_runs_nothing_twice(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # The daemon is killed while a full target queue (its cap, 100) drains 8 at a time, with
    # outcomes and the next dispatches sharing commits: what was committed `accepted` runs again
    # only as a redelivery (attempt >= 2), what was still queued runs once, in FIFO order.
    stack.plugin.args = ("--exec-delay", "0.1")
    configure_linked(stack.home, link_url(stack.hub.port), stack.key)
    await start_gateway(stack.home)
    daemon_id = await stack.hub.only_daemon()
    run = CommandRun(stack.hub, daemon_id, "full")
    order = await queue_in_order(run, 100)
    await stack.plugin.start()
    deliveries = stack.root / ".deliveries"
    await when(lambda: len(read_jsonl(deliveries)) >= 24, 30, "the queue to be draining")
    await kill_gateway(stack.home)
    delivered_at_kill = len(read_jsonl(deliveries))
    assert delivered_at_kill < 100, "the queue drained before the kill"
    await start_gateway(stack.home)
    await asyncio.gather(*(run.one(index) for index in range(100)))
    result = tally(run, stack.root, redelivery_allowed=True)
    summary(capsys, result.line("daemon-kill-full-queue", delivered_at_kill=delivered_at_kill))
    check(result, run, stack.root)
    assert result.redelivered > 0, "no command was in flight at the plugin when the daemon died"
    first_delivery = list(dict.fromkeys(line["commandId"] for line in read_jsonl(deliveries)))
    assert first_delivery == order
