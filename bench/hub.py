"""The hub under load: how many simulated daemons one instance holds, and command throughput.

The hub runs as its own subprocess (`clawgate hub run`); this process opens every simulated
daemon as one WebSocket each. A simulated daemon registers, answers PING and acks each COMMAND
`done` at once, so commands/s measures POST → COMMAND → COMMAND_ACK → 200 through the hub.
"""

from __future__ import annotations

import asyncio
import resource
import secrets
import time
import uuid
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson

from clawgate.protocol.control_link import MessageType, envelope
from clawgate.protocol.timefmt import format_time

from .procs import hub_process
from .report import Figure, Target

__all__ = ["DAEMONS", "measure_hub"]

DAEMONS: Final = 2000
CONNECT_CONCURRENCY: Final = 100
COMMANDS: Final = 1000
COMMAND_CONCURRENCY: Final = 32
COMMAND_DAEMONS: Final = 16
_SETTLE_S: Final = 1.0


def _raise_nofile(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class _Daemon:
    """A lightweight simulated daemon: register, answer PING, ack every COMMAND done."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.daemon_id = str(uuid.uuid4())
        self.task: asyncio.Task[None] | None = None

    async def register(self) -> None:
        payload = {
            "daemonId": self.daemon_id,
            "daemonVersion": "bench",
            "protocolVersion": 1,
            "hostname": "bench",
            "platform": "linux",
            "arch": "x86_64",
            "plugins": [],
            "lastAppliedRevision": 0,
            "queueDepth": 0,
        }
        await self._send(MessageType.SERVICE_REGISTER, payload)
        ack = await self.ws.receive(timeout=30)
        if ack.type is not aiohttp.WSMsgType.TEXT or '"SERVICE_ACK"' not in ack.data:
            raise RuntimeError(f"hub refused a simulated daemon: {self.ws.close_code}")
        self.task = asyncio.create_task(self._serve())

    async def _send(self, kind: MessageType, payload: dict[str, Any], **extra: Any) -> None:
        message = envelope(kind, payload)
        message.update(extra)
        await self.ws.send_str(orjson.dumps(message).decode())

    async def _serve(self) -> None:
        async for msg in self.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            message = orjson.loads(msg.data)
            kind = message["type"]
            if kind == "PING":
                pong = {"nonce": message["payload"]["nonce"]}
                await self._send(MessageType.PONG, pong, replyTo=message["id"])
            elif kind == "COMMAND":
                ack = {
                    "commandId": message["payload"]["commandId"],
                    "state": "done",
                    "attempt": 1,
                    "at": format_time(time.time()),
                    "result": {"ok": True},
                }
                await self._send(MessageType.COMMAND_ACK, ack, replyTo=message["id"])


async def _connect_all(
    session: aiohttp.ClientSession, url: str, key: str, count: int
) -> list[_Daemon]:
    daemons: list[_Daemon] = []
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    headers = {"Authorization": f"Bearer {key}"}

    async def one() -> None:
        async with gate:
            ws = await session.ws_connect(url, headers=headers, autoping=True, heartbeat=None)
            daemon = _Daemon(ws)
            await daemon.register()
            daemons.append(daemon)

    await asyncio.gather(*(one() for _ in range(count)))
    return daemons


async def _connected(http: aiohttp.ClientSession, base: str, headers: dict[str, str]) -> int:
    async with http.get(f"{base}/v1/daemons", headers=headers) as response:
        listing = await response.json()
    return sum(1 for d in listing["daemons"] if d["connected"])


async def _command_rate(
    http: aiohttp.ClientSession, base: str, headers: dict[str, str], targets: list[_Daemon]
) -> tuple[float, int]:
    done = 0
    gate = asyncio.Semaphore(COMMAND_CONCURRENCY)
    body = {"name": "bench.noop", "target": {"plugin": "bench"}, "params": {}}

    async def one(index: int) -> None:
        nonlocal done
        daemon_id = targets[index % len(targets)].daemon_id
        async with (
            gate,
            http.post(
                f"{base}/v1/daemons/{daemon_id}/commands?wait=10", json=body, headers=headers
            ) as response,
        ):
            record = await response.json()
            if response.status == 200 and record["state"] == "done":
                done += 1

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(COMMANDS)))
    return done / (time.perf_counter() - began), done


async def measure_hub(workdir: Path) -> list[Figure]:
    """Hold `DAEMONS` simulated daemons on one hub and measure commands/s through it."""
    _raise_nofile(2 * DAEMONS + 1024)
    token = secrets.token_urlsafe(24)
    hub = hub_process(workdir / "hub-home", workdir / "hub.log", token)
    port = hub.port
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            await hub.wait_ready(session)
            async with session.post(f"{base}/v1/keys", json={}, headers=headers) as response:
                key = (await response.json())["key"]
            await asyncio.sleep(_SETTLE_S)
            idle_rss = hub.rss_bytes()
            began = time.perf_counter()
            daemons = await _connect_all(session, f"ws://127.0.0.1:{port}/v1/daemon", key, DAEMONS)
            connect_s = time.perf_counter() - began
            await asyncio.sleep(_SETTLE_S)
            held = await _connected(session, base, headers)
            held_rss = hub.rss_bytes()
            rate, done = await _command_rate(session, base, headers, daemons[:COMMAND_DAEMONS])
            for daemon in daemons:
                await daemon.ws.close()
    finally:
        hub.stop()
    per_daemon = (held_rss - idle_rss) / max(held, 1)
    return [
        Figure(
            "hub_daemons_held",
            held,
            "conns",
            None,
            Target(">=", DAEMONS),
            f"simulated daemons registered and connected at once ({connect_s:.1f} s to connect)",
        ),
        Figure(
            "hub_rss_with_daemons",
            held_rss / 2**20,
            "MiB",
            None,
            None,
            f"hub RSS holding {held} daemons (idle {idle_rss / 2**20:.1f} MiB)",
        ),
        Figure(
            "hub_memory_per_daemon",
            per_daemon / 1024,
            "KiB",
            None,
            None,
            "(RSS with daemons - idle RSS) / daemons held",
        ),
        Figure(
            "hub_commands_per_s",
            rate,
            "cmd/s",
            None,
            None,
            f"POST ?wait= → COMMAND → COMMAND_ACK done → 200; {done}/{COMMANDS} done, "
            f"{COMMAND_CONCURRENCY} in flight over {COMMAND_DAEMONS} daemons",
        ),
    ]
