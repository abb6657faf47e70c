"""The OpenAI-compatible endpoint against the WebSocket API, same gateway, same echo agent.

Figures (issue 16 point 7; target: the HTTP path within 1.5x of the WS path on both):
- `openai_first_chunk_p50/p99`: `POST /v1/chat/completions` with `stream: true`, one at a
  time: from sending the request to reading the first chunk that carries text. Baseline:
  the `agent` method on one WS connection, from sending it to the run's first `assistant`
  event.
- `openai_completions_per_s_50`: 50 clients, each sending streamed completions back to
  back and reading each stream to `data: [DONE]`. Baseline: 50 runs at a time over one WS
  connection, each `agent` call awaited to its final response. One connection is the WS
  path's best case: every operator connection receives every run's events, so 50 WS
  connections would make the gateway write each event 50 times.

Each HTTP client and each WS worker uses a session of its own, so both paths store the
same messages and no run waits behind another in a session's lane. The machine is shared,
so the two paths are measured alternately (samples one by one, throughput in halves):
background load then lands on both alike instead of on whichever ran second.
"""

from __future__ import annotations

import asyncio
import resource
import time
import uuid
from typing import Any, Final

import aiohttp

from clawgate.client import GatewayClient

from .chat import ECHO_CONFIG
from .procs import ServerProcess, Servers
from .report import Figure, Measure, Target, median, percentile

__all__ = ["CLIENTS", "COMPLETIONS", "FIRST_CHUNKS", "measure_openai_http"]

OPENAI_CONFIG: Final = ECHO_CONFIG + "\n[http.openai]\nenabled = true\n"
FIRST_CHUNKS: Final = 200
CLIENTS: Final = 50
COMPLETIONS: Final = 1000
_WARMUP: Final = 10
_MESSAGE: Final = "the quick brown fox jumps over the lazy dog"
_TARGET_LATENCY = Target("<", 1.5, Measure.RATIO)
_TARGET_RATE = Target(">=", 1 / 1.5, Measure.RATIO)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- HTTP -------------------------------------------------------------------------------


async def _http_completion(
    http: aiohttp.ClientSession, url: str, token: str, session: str
) -> float:
    """Stream one completion to its end; return seconds to the first text chunk."""
    body = {
        "model": "clawgate:main",
        "stream": True,
        "messages": [{"role": "user", "content": _MESSAGE}],
    }
    headers = {"Authorization": f"Bearer {token}", "x-clawgate-session": session}
    sent = time.perf_counter()
    first = 0.0
    async with http.post(url, json=body, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {await response.text()}")
        while True:
            event = await response.content.readuntil(b"\n\n")
            if not first and b'"content":"' in event and b'"content":""' not in event:
                first = time.perf_counter() - sent
            if event == b"data: [DONE]\n\n" or not event:
                return first


# -- WebSocket --------------------------------------------------------------------------


def _ws_client(gateway: ServerProcess, token: str) -> GatewayClient:
    return GatewayClient(
        gateway.ws_url,
        token=token,
        client_id="cli",
        client_version="1",
        platform="linux",
        client_mode="cli",
        scopes=["operator.admin"],
    )


async def _ws_first_assistant(client: GatewayClient, session: str) -> float:
    """Run `agent` once; return seconds to its first assistant event (then await the end)."""
    events = client.events(maxsize=1_000_000)
    run_id = str(uuid.uuid4())
    params = {"message": _MESSAGE, "sessionKey": session, "idempotencyKey": run_id}
    sent = time.perf_counter()
    _, final = await client.call_streaming("agent", params)
    first = 0.0
    async for event in events:
        payload = event.payload
        if (
            event.event == "agent"
            and payload["runId"] == run_id
            and payload["stream"] == "assistant"
        ):
            first = time.perf_counter() - sent
            break
    await events.aclose()
    await final
    return first


async def _ws_run(client: GatewayClient, session: str) -> None:
    params = {"message": _MESSAGE, "sessionKey": session, "idempotencyKey": str(uuid.uuid4())}
    _, final = await client.call_streaming("agent", params)
    response = await final
    if not response.ok:
        raise RuntimeError(f"agent run failed: {response.error}")


async def _timed(gateway: ServerProcess, run: object) -> tuple[float, float, float]:
    """Await `run()`; return the seconds it took and the server's and this process's CPU."""
    server_cpu, client_cpu, began = gateway.cpu_seconds(), _cpu_s(), time.perf_counter()
    await run()  # type: ignore[operator]
    elapsed = time.perf_counter() - began
    return elapsed, gateway.cpu_seconds() - server_cpu, _cpu_s() - client_cpu


async def _compare(gateway: ServerProcess, token: str) -> tuple[list[float], ...]:
    """Return first-chunk samples and completions/s of both paths, measured alternately.

    The machine is shared: WS and HTTP samples alternate one by one, and the throughput
    runs alternate in halves, so a change in background load lands on both paths alike.
    """
    url = f"http://127.0.0.1:{gateway.port}/v1/chat/completions"
    client = _ws_client(gateway, token)
    await client.connect()
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    ws_firsts: list[float] = []
    http_firsts: list[float] = []
    spent = {"ws": [0.0, 0.0, 0.0], "http": [0.0, 0.0, 0.0]}  # seconds, server cpu, client cpu
    try:
        async with aiohttp.ClientSession(connector=connector) as http:

            async def ws_sample() -> float:
                return await _ws_first_assistant(client, "bench-ws-one")

            async def http_sample() -> float:
                return await _http_completion(http, url, token, "bench-http-one")

            for _ in range(_WARMUP):
                await ws_sample()
                await http_sample()
            for _ in range(FIRST_CHUNKS):
                ws_firsts.append(await ws_sample())
                http_firsts.append(await http_sample())

            async def ws_worker(index: int, count: int) -> None:
                for _ in range(count):
                    await _ws_run(client, f"bench-ws-{index}")

            async def http_worker(index: int, count: int) -> None:
                for _ in range(count):
                    await _http_completion(http, url, token, f"bench-http-{index}")

            async def throughput(worker: Any, count: int) -> tuple[float, float, float]:
                runs = (worker(index, count) for index in range(CLIENTS))
                return await _timed(gateway, lambda: asyncio.gather(*runs))

            await throughput(ws_worker, 1)  # warm-up: one run in each worker's session
            await throughput(http_worker, 1)
            half = COMPLETIONS // CLIENTS // 2
            for _ in range(2):
                for path, worker in (("ws", ws_worker), ("http", http_worker)):
                    for slot, value in enumerate(await throughput(worker, half)):
                        spent[path][slot] += value
    finally:
        await client.close()
    return ws_firsts, http_firsts, spent["ws"], spent["http"]


def _rate(spent: list[float]) -> tuple[float, str]:
    seconds, server, own = spent
    note = f"cpu server/client {server / seconds:.0%}/{own / seconds:.0%}"
    return COMPLETIONS / seconds, note


async def measure_openai_http(
    servers: Servers, http: aiohttp.ClientSession, token: str
) -> list[Figure]:
    """Measure first-chunk latency and completions/s over HTTP and over WS, one gateway."""
    gateway = servers.gateway(OPENAI_CONFIG)
    await gateway.wait_ready(http)
    ws_firsts, http_firsts, ws_spent, http_spent = await _compare(gateway, token)
    servers.stop(gateway)
    ws_rate, ws_note = _rate(ws_spent)
    http_rate, http_note = _rate(http_spent)
    http_ms = [s * 1000 for s in http_firsts]
    ws_ms = [s * 1000 for s in ws_firsts]
    words = len(_MESSAGE.split())
    return [
        Figure(
            "openai_first_chunk_p50",
            median(http_ms),
            "ms",
            baseline=median(ws_ms),
            target=_TARGET_LATENCY,
            note=f"echo agent, {words} words, {FIRST_CHUNKS} streamed completions in a row, "
            "alternating with the baseline: `agent` over one WS connection to its first "
            "assistant event",
        ),
        Figure(
            "openai_first_chunk_p99",
            percentile(http_ms, 0.99),
            "ms",
            baseline=percentile(ws_ms, 0.99),
            target=_TARGET_LATENCY,
        ),
        Figure(
            "openai_completions_per_s_50",
            http_rate,
            "completions/s",
            baseline=ws_rate,
            target=_TARGET_RATE,
            note=f"{COMPLETIONS} streamed completions by {CLIENTS} clients, {http_note}; "
            f"baseline: {CLIENTS} `agent` runs at a time over one WS connection, {ws_note}; "
            "the two alternate in halves of 500",
        ),
    ]
