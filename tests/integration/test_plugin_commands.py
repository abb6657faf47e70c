"""Commands queued while no plugin is there, delivered in order when one registers."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from clawgate.client import GatewayClient
from clawgate.commands import Command
from tests.conftest import RunningGateway

SECRET = "s3cret-command-value-5521"


class FakeRuntime:
    """A plugin process speaking NDJSON on the socket, scripted by the test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def register(
        cls, path: Path, name: str = "runtime", caps: tuple[str, ...] = ("demo",)
    ) -> FakeRuntime:
        reader, writer = await asyncio.open_unix_connection(str(path))
        runtime = cls(reader, writer)
        params = {
            "name": name,
            "version": "1.0.0",
            "protocolVersion": 1,
            "capabilities": list(caps),
        }
        await runtime.send({"type": "req", "id": "r1", "method": "register", "params": params})
        answer = await runtime.next_frame(lambda f: f.get("id") == "r1")
        assert answer["ok"] is True, answer
        return runtime

    async def send(self, frame: dict[str, Any]) -> None:
        self.writer.write(orjson.dumps(frame) + b"\n")
        await self.writer.drain()

    async def next_frame(self, match: Any = lambda frame: True) -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                line = await self.reader.readline()
                assert line, "daemon closed the socket"
                frame: dict[str, Any] = orjson.loads(line)
                if match(frame):
                    return frame

    async def next_execute(self) -> dict[str, Any]:
        return await self.next_frame(lambda f: f.get("method") == "command.execute")

    async def answer(self, request: dict[str, Any], result: Any) -> None:
        await self.send(
            {"type": "res", "id": request["id"], "ok": True, "payload": {"result": result}}
        )

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def command(command_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "commandId": command_id,
        "name": "demo.echo",
        "target": {"capability": "demo"},
        "params": {"n": command_id},
        "issuedAt": 0,
        **extra,
    }


@pytest.fixture
async def operator(host: RunningGateway) -> AsyncIterator[GatewayClient]:
    async with GatewayClient(host.url, token=host.token) as client:
        yield client


async def submit(host: RunningGateway, frame: dict[str, Any]) -> dict[str, Any]:
    assert host.server.plugins is not None
    frame = {**frame, "issuedAt": host.server.now_ms()}
    return await host.server.plugins.router.submit(frame)


async def test_offline_commands_are_delivered_in_order(
    host: RunningGateway, operator: GatewayClient, socket_dir: Path
) -> None:
    acks = [await submit(host, command(f"c{i}")) for i in range(3)]
    assert [ack["state"] for ack in acks] == ["queued"] * 3
    assert [ack["queuePosition"] for ack in acks] == [0, 1, 2]
    queue = await operator.call("queue.list")
    assert queue["depth"] == 3 and queue["byTarget"] == {"capability:demo": 3}

    runtime = await FakeRuntime.register(socket_dir / "gateway.sock")
    delivered = []
    for _ in range(3):
        request = await runtime.next_execute()
        delivered.append(request["params"]["commandId"])
        await runtime.answer(request, {"echo": request["params"]["params"]["n"]})
    assert delivered == ["c0", "c1", "c2"]
    plugins = await operator.call("plugins.list")
    assert [p["name"] for p in plugins["plugins"]] == ["runtime"]
    async with asyncio.timeout(5):
        while (await operator.call("queue.list"))["depth"]:
            await asyncio.sleep(0.02)
    again = await submit(host, command("c1"))
    assert again["state"] == "done" and again["result"] == {"echo": "c1"}
    await runtime.close()


async def test_live_plugin_runs_at_once_and_duplicates_run_once(
    host: RunningGateway, socket_dir: Path
) -> None:
    runtime = await FakeRuntime.register(socket_dir / "gateway.sock")
    ack = await submit(host, command("now"))
    assert ack["state"] == "accepted"
    request = await runtime.next_execute()
    duplicate = await submit(host, command("now"))
    assert duplicate["state"] == "accepted"
    await runtime.answer(request, "ok")
    await asyncio.sleep(0.1)
    assert (await submit(host, command("now")))["state"] == "done"
    await runtime.close()


async def test_queued_commands_survive_a_restart(host: RunningGateway, socket_dir: Path) -> None:
    await submit(host, command("kept-1"))
    await submit(host, command("kept-2"))
    await host.restart()
    runtime = await FakeRuntime.register(socket_dir / "gateway.sock")
    first = await runtime.next_execute()
    await runtime.answer(first, 1)
    second = await runtime.next_execute()
    assert [first["params"]["commandId"], second["params"]["commandId"]] == ["kept-1", "kept-2"]
    await runtime.answer(second, 2)
    await runtime.close()


async def test_plugin_crash_mid_command_requeues_and_delivers_once(
    host: RunningGateway, socket_dir: Path
) -> None:
    crashing = await FakeRuntime.register(socket_dir / "gateway.sock")
    await submit(host, command("fragile"))
    first = await crashing.next_execute()
    assert first["params"]["attempt"] == 1
    await crashing.close()
    await asyncio.sleep(0.2)
    survivor = await FakeRuntime.register(socket_dir / "gateway.sock", name="runtime-2")
    retry = await survivor.next_execute()
    assert retry["params"]["commandId"] == "fragile" and retry["params"]["attempt"] == 2
    await survivor.answer(retry, "done")
    await asyncio.sleep(0.1)
    assert (await submit(host, command("fragile")))["state"] == "done"
    await survivor.close()


async def test_secret_params_never_reach_the_database(
    host: RunningGateway, socket_dir: Path
) -> None:
    await submit(host, command("with-secret", secrets={"apiToken": SECRET}))
    runtime = await FakeRuntime.register(socket_dir / "gateway.sock")
    request = await runtime.next_execute()
    assert request["params"]["secrets"] == {"apiToken": SECRET}
    await runtime.answer(request, "used")
    await host.server.stop()
    for path in host.home.glob("state.db*"):
        assert SECRET.encode() not in path.read_bytes()
    await runtime.close()


async def test_unknown_target_kind_is_rejected(host: RunningGateway) -> None:
    ack = await submit(host, {**command("bad"), "target": {"capability": "a", "plugin": "b"}})
    assert ack["state"] == "rejected" and ack["error"]["code"] == "INVALID_PARAMS"


async def test_concurrent_submits_put_at_most_eight_in_flight_on_a_plugin(
    host: RunningGateway, socket_dir: Path
) -> None:
    runtime = await FakeRuntime.register(socket_dir / "gateway.sock")
    ids = [f"burst-{n}" for n in range(20)]
    acks = await asyncio.gather(*(submit(host, command(cid)) for cid in ids))
    assert Counter(ack["state"] for ack in acks) == {"accepted": 8, "queued": 12}
    delivered = []
    for _ in ids:
        request = await runtime.next_execute()
        delivered.append(request["params"]["commandId"])
        await runtime.answer(request, "ok")
    assert delivered == ids
    await runtime.close()


async def test_a_freed_slot_serves_every_target_the_plugin_can_take(
    host: RunningGateway, socket_dir: Path
) -> None:
    for n in range(10):
        await submit(host, command(f"a{n}", target={"capability": "alpha"}))
        await submit(host, command(f"b{n}", target={"capability": "beta"}))
    runtime = await FakeRuntime.register(socket_dir / "gateway.sock", caps=("alpha", "beta"))
    # Fill all 8 slots before answering, so every later dispatch comes from a freed slot.
    first = [await runtime.next_execute() for _ in range(8)]
    delivered = [request["params"]["commandId"] for request in first]
    for request in first:
        await runtime.answer(request, "ok")
    for _ in range(12):
        request = await runtime.next_execute()
        delivered.append(request["params"]["commandId"])
        await runtime.answer(request, "ok")
    assert [cid for cid in delivered if cid[0] == "a"] == [f"a{n}" for n in range(10)]
    assert [cid for cid in delivered if cid[0] == "b"] == [f"b{n}" for n in range(10)]
    await runtime.close()


def state_on_disk(host: RunningGateway, command_id: str) -> str | None:
    """Read a command's committed state through a connection of our own (not the store's)."""
    conn = sqlite3.connect(host.home / "state.db")
    try:
        row = conn.execute("SELECT state FROM commands WHERE command_id = ?", (command_id,))
        found = row.fetchone()
        return None if found is None else str(found[0])
    finally:
        conn.close()


async def test_each_command_reaches_the_plugin_only_after_its_accepted_state_is_on_disk(
    host: RunningGateway, socket_dir: Path
) -> None:
    for n in range(3):
        await submit(host, command(f"waiting-{n}"))
    # Registering starts the queued three (pump); the fourth is accepted by its submit.
    runtime = await FakeRuntime.register(socket_dir / "gateway.sock")
    assert (await submit(host, command("live")))["state"] == "accepted"
    seen = []
    for _ in range(4):
        request = await runtime.next_execute()
        seen.append(request["params"]["commandId"])
        assert state_on_disk(host, seen[-1]) == "accepted"
        await runtime.answer(request, "ok")
    assert seen == ["waiting-0", "waiting-1", "waiting-2", "live"]
    await runtime.close()


async def test_an_outcome_and_the_dispatch_of_the_freed_slot_share_one_commit(
    host: RunningGateway, socket_dir: Path
) -> None:
    assert host.server.plugins is not None
    commits: list[list[tuple[str, str]]] = []

    def listener(records: Sequence[Command]) -> None:
        commits.append([(r.command_id, r.state.value) for r in records])

    host.server.plugins.commands.subscribe(listener)
    runtime = await FakeRuntime.register(socket_dir / "gateway.sock")
    for n in range(9):
        await submit(host, command(f"slot-{n}"))
    first = [await runtime.next_execute() for _ in range(8)]
    await runtime.answer(first[0], "ok")
    ninth = await runtime.next_execute()
    assert ninth["params"]["commandId"] == "slot-8"
    assert [("slot-0", "succeeded"), ("slot-8", "accepted")] in commits
    for request in [*first[1:], ninth]:
        await runtime.answer(request, "ok")
    await runtime.close()
