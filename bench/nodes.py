"""Nodes: `node.invoke` round trips, invokes/s with 100 nodes and 10 operators, RSS per node.

The gateway is a real `clawgate gateway run` subprocess. Nodes and operators are raw aiohttp
sockets in this process (nodes sign their `connect` with real Ed25519 identities and are
auto-approved on loopback); a node answers each `node.invoke.request` at once with
`payloadJSON: "{}"`, the trivial command. Frames are recognised by their first bytes so the
load generator spends its CPU on sockets.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import orjson

from clawgate.protocol.device_auth import DeviceIdentity, SignedFields, build_payload_v3

from .procs import ServerProcess, Servers
from .report import Figure, Target, median, percentile

__all__ = ["IDLE_NODES", "NODES", "OPERATORS", "measure_nodes"]

NODES: Final = 100
OPERATORS: Final = 10
IDLE_NODES: Final = 200  # for RSS per node: NODES of them also serve the throughput phase
IN_FLIGHT_PER_OPERATOR: Final = 32
LATENCY_INVOKES: Final = 500
WARMUP_INVOKES: Final = 100
THROUGHPUT_S: Final = 3.0
_OPEN_AT_ONCE: Final = 16  # below the 32 unauthenticated sockets allowed per IP
_REQUEST_PREFIX: Final = b'{"type":"event","event":"node.invoke.request"'
_RES_PREFIX: Final = b'{"type":"res"'


def _connect_frame(params: dict[str, Any]) -> str:
    return orjson.dumps({"type": "req", "id": "c", "method": "connect", "params": params}).decode()


async def _open_node(session: aiohttp.ClientSession, url: str, token: str) -> NodePeer:
    """Open one node socket: challenge, signed connect, hello-ok."""
    identity = DeviceIdentity.generate()
    ws = await session.ws_connect(url, compress=0, max_msg_size=0)
    challenge = orjson.loads((await ws.receive()).data)["payload"]
    client = {"id": "node-host", "version": "1", "platform": "linux", "mode": "node"}
    fields = SignedFields(
        device_id=identity.device_id,
        client_id="node-host",
        client_mode="node",
        role="node",
        scopes=(),
        signed_at_ms=challenge["ts"],
        token=token,
        nonce=challenge["nonce"],
        platform="linux",
        device_family=None,
    )
    params = {
        "minProtocol": 3,
        "maxProtocol": 4,
        "client": client,
        "role": "node",
        "scopes": [],
        "commands": ["device.info"],
        "auth": {"token": token},
        "device": {
            "id": identity.device_id,
            "publicKey": identity.public_key_b64url,
            "signature": identity.sign(build_payload_v3(fields)),
            "signedAt": challenge["ts"],
            "nonce": challenge["nonce"],
        },
    }
    await ws.send_str(_connect_frame(params))
    answer = orjson.loads((await ws.receive()).data)
    if not answer.get("ok"):
        raise RuntimeError(f"node connect refused: {answer.get('error')}")
    peer = NodePeer(identity.device_id, ws)
    peer.task = asyncio.create_task(peer.serve())
    return peer


@dataclass
class NodePeer:
    """A node that answers every invoke at once."""

    node_id: str
    ws: aiohttp.ClientWebSocketResponse
    answered: int = 0
    task: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        counter = itertools.count()
        async for message in self.ws:
            data = message.data if message.type is aiohttp.WSMsgType.TEXT else b""
            raw = data.encode() if isinstance(data, str) else data
            if not raw.startswith(_REQUEST_PREFIX):
                continue
            request = orjson.loads(raw)["payload"]
            result = {"id": request["id"], "nodeId": self.node_id, "ok": True, "payloadJSON": "{}"}
            frame = {
                "type": "req",
                "id": f"r{next(counter)}",
                "method": "node.invoke.result",
                "params": result,
            }
            await self.ws.send_str(orjson.dumps(frame).decode())
            self.answered += 1


@dataclass
class OperatorPeer:
    """An operator socket with responses matched to waiting requests by id."""

    ws: aiohttp.ClientWebSocketResponse
    waiting: dict[str, asyncio.Future[bool]] = field(default_factory=dict)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    task: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        async for message in self.ws:
            data = message.data if message.type is aiohttp.WSMsgType.TEXT else b""
            raw = data.encode() if isinstance(data, str) else data
            if not raw.startswith(_RES_PREFIX):
                continue
            frame = orjson.loads(raw)
            future = self.waiting.pop(frame["id"], None)
            if future is not None and not future.done():
                future.set_result(bool(frame["ok"]))

    async def invoke(self, node_id: str) -> bool:
        number = next(self.ids)
        request_id = f"i{number}"
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting[request_id] = future
        params = {
            "nodeId": node_id,
            "command": "device.info",
            "idempotencyKey": f"{id(self)}-{number}",
        }
        frame = {"type": "req", "id": request_id, "method": "node.invoke", "params": params}
        await self.ws.send_str(orjson.dumps(frame).decode())
        return await future


async def _open_operator(session: aiohttp.ClientSession, url: str, token: str) -> OperatorPeer:
    ws = await session.ws_connect(url, compress=0, max_msg_size=0)
    await ws.receive()  # the challenge
    params = {
        "minProtocol": 3,
        "maxProtocol": 4,
        "client": {"id": "cli", "version": "1", "platform": "linux", "mode": "cli"},
        "scopes": ["operator.write"],
        "auth": {"token": token},
    }
    await ws.send_str(_connect_frame(params))
    answer = orjson.loads((await ws.receive()).data)
    if not answer.get("ok"):
        raise RuntimeError(f"operator connect refused: {answer.get('error')}")
    peer = OperatorPeer(ws)
    peer.task = asyncio.create_task(peer.serve())
    return peer


async def _open_nodes(
    session: aiohttp.ClientSession, url: str, token: str, count: int
) -> list[NodePeer]:
    gate = asyncio.Semaphore(_OPEN_AT_ONCE)

    async def one() -> NodePeer:
        async with gate:
            return await _open_node(session, url, token)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def _latency(operator: OperatorPeer, node: NodePeer) -> list[float]:
    for _ in range(WARMUP_INVOKES):
        await operator.invoke(node.node_id)
    samples = []
    for _ in range(LATENCY_INVOKES):
        started = time.perf_counter()
        assert await operator.invoke(node.node_id)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _throughput(operators: list[OperatorPeer], nodes: list[NodePeer]) -> tuple[float, int]:
    done = 0
    failed = 0
    stop_at = 0.0
    counting = False

    async def worker(operator: OperatorPeer, offset: int) -> None:
        nonlocal done, failed
        for index in itertools.count(offset):
            if time.perf_counter() >= stop_at:
                return
            ok = await operator.invoke(nodes[index % len(nodes)].node_id)
            if counting:
                done += ok
                failed += not ok

    stop_at = time.perf_counter() + 0.5 + THROUGHPUT_S
    workers = [
        asyncio.create_task(worker(op, i * 7 + j * 13))
        for i, op in enumerate(operators)
        for j in range(IN_FLIGHT_PER_OPERATOR)
    ]
    await asyncio.sleep(0.5)  # warm-up
    counting = True
    started = time.perf_counter()
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - started
    return done / elapsed, failed


async def _close(peers: list[Any]) -> None:
    for peer in peers:
        await peer.ws.close()
        if peer.task is not None:
            peer.task.cancel()


async def measure_nodes(servers: Servers, http: aiohttp.ClientSession, token: str) -> list[Figure]:
    """Measure invoke latency and throughput and the memory a connected idle node costs."""
    gateway: ServerProcess = servers.gateway()
    await gateway.wait_ready(http)
    url = gateway.ws_url
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Nodes first: their cost, not the presence lists broadcast to operators as they join.
        # One node warms up: the first device signature loads `cryptography` (~9 MiB, once).
        warmup = await _open_nodes(session, url, token, 1)
        await asyncio.sleep(1)
        before = gateway.rss_bytes()
        nodes = warmup + await _open_nodes(session, url, token, IDLE_NODES)
        await asyncio.sleep(1)
        per_node = (gateway.rss_bytes() - before) / IDLE_NODES
        operators = [await _open_operator(session, url, token) for _ in range(OPERATORS)]
        latency = await _latency(operators[0], nodes[0])
        cpu_gateway, cpu_self, wall = (
            gateway.cpu_seconds(),
            time.process_time(),
            time.perf_counter(),
        )
        rate, failed = await _throughput(operators, nodes[:NODES])
        wall = time.perf_counter() - wall
        share = (
            f"CPU gateway {(gateway.cpu_seconds() - cpu_gateway) / wall:.0%}, "
            f"load generator {(time.process_time() - cpu_self) / wall:.0%}"
        )
        await _close(nodes + operators)
    servers.stop(gateway)
    return [
        Figure(
            "node_invoke_p50",
            median(latency),
            "ms",
            target=Target("<", 2),
            note=f"operator -> gateway -> node -> gateway -> operator, {LATENCY_INVOKES} in a row",
        ),
        Figure("node_invoke_p99", percentile(latency, 0.99), "ms"),
        Figure(
            "node_invokes_per_s",
            rate,
            "invokes/s",
            target=Target(">=", 3000),
            note=f"{NODES} nodes, {OPERATORS} operators x {IN_FLIGHT_PER_OPERATOR} in flight, "
            f"{THROUGHPUT_S:g} s; {failed} failed; {share}",
        ),
        Figure(
            "rss_per_idle_node",
            per_node / 1024,
            "KiB",
            target=Target("<", 40),
            note=f"(RSS with {IDLE_NODES} more paired idle nodes - RSS with 1) / {IDLE_NODES}",
        ),
    ]
