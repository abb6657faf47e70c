"""Chat through the echo agent: send → first delta → final, and one run's event fan-out."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Final

import aiohttp

from clawgate.client import GatewayClient

from .procs import Servers
from .report import Figure, median, percentile

__all__ = ["ECHO_CONFIG", "measure_chat"]

# The bench measures the pipeline, not a typing effect: the echo agent streams undelayed.
ECHO_CONFIG: Final = '[agent]\nbackend = "echo"\necho_delay_ms = 0\n'
SEQUENTIAL: Final = 30
CONCURRENT: Final = 100
WATCHERS: Final = 50
LONG_WORDS: Final = 2000
_STREAM: Final = 1_000_000
_MESSAGE: Final = "the quick brown fox jumps over the lazy dog"


def _client(url: str, token: str) -> GatewayClient:
    return GatewayClient(
        url,
        token=token,
        client_id="cli",
        client_version="1",
        platform="linux",
        client_mode="cli",
        scopes=["operator.admin"],
    )


async def _timed_runs(client: GatewayClient, sessions: list[str]) -> list[tuple[float, float]]:
    """Send one message per session at once; return (to first delta, to final) seconds each."""
    events = client.events(maxsize=_STREAM)
    sent: dict[str, float] = {}
    first: dict[str, float] = {}
    final: dict[str, float] = {}

    async def send(session: str) -> None:
        run_id = str(uuid.uuid4())
        sent[run_id] = time.perf_counter()
        params = {"sessionKey": session, "message": _MESSAGE, "idempotencyKey": run_id}
        await client.call("chat.send", params)

    await asyncio.gather(*(send(session) for session in sessions))
    async for event in events:
        if event.event != "chat":
            continue
        run_id, state, now = event.payload["runId"], event.payload["state"], time.perf_counter()
        if state == "delta":
            first.setdefault(run_id, now)
        else:
            final[run_id] = now
            if len(final) == len(sessions):
                break
    await events.aclose()
    return [(first[r] - sent[r], final[r] - sent[r]) for r in sent]


def _latency_figures(label: str, samples: list[tuple[float, float]], note: str) -> list[Figure]:
    first_ms = [a * 1000 for a, _ in samples]
    final_ms = [b * 1000 for _, b in samples]
    return [
        Figure(f"chat_first_delta_{label}_p50", median(first_ms), "ms", note=note),
        Figure(f"chat_first_delta_{label}_p99", percentile(first_ms, 0.99), "ms"),
        Figure(f"chat_final_{label}_p50", median(final_ms), "ms"),
        Figure(f"chat_final_{label}_p99", percentile(final_ms, 0.99), "ms"),
    ]


async def _fanout(url: str, token: str) -> tuple[float, int]:
    """Stream one long run to `WATCHERS` clients; return events/s delivered and the count."""
    watchers = [_client(url, token) for _ in range(WATCHERS)]
    streams = [watcher.events(maxsize=_STREAM) for watcher in watchers]
    gate = asyncio.Semaphore(16)  # below the 32 unauthenticated sockets allowed per IP

    async def connect(watcher: GatewayClient) -> None:
        async with gate:
            await watcher.connect()

    await asyncio.gather(*(connect(watcher) for watcher in watchers))
    run_id = str(uuid.uuid4())
    delivered = 0
    first_at: float | None = None
    last_at = 0.0

    async def watch(stream: object) -> None:
        nonlocal delivered, first_at, last_at
        async for event in stream:  # type: ignore[attr-defined]
            if event.event not in ("agent", "chat") or event.payload["runId"] != run_id:
                continue
            now = time.perf_counter()
            first_at = now if first_at is None else first_at
            last_at = now
            delivered += 1
            if event.event == "chat" and event.payload["state"] != "delta":
                return

    tasks = [asyncio.create_task(watch(stream)) for stream in streams]
    message = " ".join(f"w{i}" for i in range(LONG_WORDS))
    await watchers[0].call(
        "chat.send", {"sessionKey": "fanout", "message": message, "idempotencyKey": run_id}
    )
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    for watcher in watchers:
        await watcher.close()
    assert first_at is not None
    return delivered / max(last_at - first_at, 1e-9), delivered


async def measure_chat(servers: Servers, http: aiohttp.ClientSession, token: str) -> list[Figure]:
    """Measure chat latency (1 and 100 sessions) and one run's fan-out to 50 watchers."""
    gateway = servers.gateway(ECHO_CONFIG)
    await gateway.wait_ready(http)
    client = _client(gateway.ws_url, token)
    await client.connect()
    try:
        sequential: list[tuple[float, float]] = []
        for _ in range(SEQUENTIAL):
            sequential += await _timed_runs(client, ["agent:main:bench-one"])
        sessions = [f"agent:main:bench-{i}" for i in range(CONCURRENT)]
        concurrent = await _timed_runs(client, sessions)
    finally:
        await client.close()
    note = f"echo backend, echo_delay_ms = 0, {len(_MESSAGE.split())} words per reply"
    figures = _latency_figures("1_session", sequential, f"{note}; {SEQUENTIAL} sends in a row")
    figures += _latency_figures(
        f"{CONCURRENT}_sessions", concurrent, f"{note}; {CONCURRENT} sessions sent at once"
    )
    rate, delivered = await _fanout(gateway.ws_url, token)
    figures.append(
        Figure(
            "chat_run_fanout_events_per_s",
            rate,
            "events/s",
            note=f"one {LONG_WORDS}-word run (agent + chat events) to {WATCHERS} clients,"
            f" {delivered} events delivered",
        )
    )
    servers.stop(gateway)
    return figures
