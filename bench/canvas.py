"""The canvas host: what it adds to an idle gateway, how fast it serves, how fast pages hear."""

from __future__ import annotations

import asyncio
import time
from typing import Final

import aiohttp

from .procs import ServerProcess, Servers, free_port
from .report import Figure, median, percentile

__all__ = ["RELOADS", "measure_canvas"]

SETTLE_S: Final = 1.0
IDLE_CPU_S: Final = 5.0
RELOADS: Final = 20
# Past the watcher's batching (a batch ends 100 ms after the last change): one write a batch.
RELOAD_GAP_S: Final = 0.3
GETS: Final = 2000
GET_CONCURRENCY: Final = 16
_FILE_BYTES: Final = 10 * 1024
_MIB: Final = 1024 * 1024


def _canvas_config(port: int) -> str:
    return f"[canvas]\nenabled = true\nport = {port}\n"


async def _idle_cpu(server: ServerProcess) -> float:
    """Return the server's CPU use over `IDLE_CPU_S` idle seconds, in percent of one core."""
    before = server.cpu_seconds()
    await asyncio.sleep(IDLE_CPU_S)
    return (server.cpu_seconds() - before) / IDLE_CPU_S * 100


async def _reload_latencies(
    http: aiohttp.ClientSession, server: ServerProcess, port: int, token: str
) -> list[float]:
    """Write a page `RELOADS` times; return each write -> reload notice time in seconds."""
    assert server.home is not None
    page = server.home / "canvas" / "main" / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("<html><body>0</body></html>", encoding="utf-8")
    await asyncio.sleep(RELOAD_GAP_S)
    latencies: list[float] = []
    async with http.ws_connect(f"ws://127.0.0.1:{port}/__clawgate__/ws") as ws:
        await ws.send_json({"type": "auth", "token": token, "page": "/main/index.html"})
        assert (await ws.receive_json(timeout=5))["type"] == "ready"
        for index in range(RELOADS):
            written = time.perf_counter()
            page.write_text(f"<html><body>{index}</body></html>", encoding="utf-8")
            while True:
                notice = await ws.receive_json(timeout=5)
                if "main/index.html" in notice.get("paths", []):
                    break
            latencies.append(time.perf_counter() - written)
            await asyncio.sleep(RELOAD_GAP_S)
    return latencies


async def _gets_per_s(http: aiohttp.ClientSession, url: str) -> float:
    """Fetch `url` `GETS` times, `GET_CONCURRENCY` at once; return requests/s."""
    left = GETS

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            async with http.get(url) as response:
                assert response.status == 200
                await response.read()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(GET_CONCURRENCY)))
    return GETS / (time.perf_counter() - began)


async def measure_canvas(servers: Servers, token: str) -> list[Figure]:
    """Idle RSS and CPU with the canvas on against off, reload latency, static GETs/s."""
    canvas_port = free_port()
    async with aiohttp.ClientSession() as http:
        off = servers.gateway()
        on = servers.gateway(_canvas_config(canvas_port))
        await off.wait_ready(http)
        await on.wait_ready(http)
        await asyncio.sleep(SETTLE_S)
        rss_off, rss_on = off.rss_bytes(), on.rss_bytes()
        cpu_off, cpu_on = await asyncio.gather(_idle_cpu(off), _idle_cpu(on))
        servers.stop(off)
        latencies = await _reload_latencies(http, on, canvas_port, token)
        assert on.home is not None
        (on.home / "canvas" / "main" / "data.json").write_bytes(b"0" * _FILE_BYTES)
        gets = await _gets_per_s(http, f"http://127.0.0.1:{canvas_port}/main/data.json")
        # Baseline: the same gateway's WebChat script, served from memory on its own port.
        asset = await _gets_per_s(http, f"http://127.0.0.1:{on.port}/webchat/app.js")
        servers.stop(on)
    return [
        Figure(
            "canvas_idle_rss",
            rss_on / _MIB,
            "MiB",
            note=f"gateway with [canvas] on, after start-up and {SETTLE_S:g} s idle; "
            f"canvas off in the same run: {rss_off / _MIB:.1f} MiB "
            f"(+{(rss_on - rss_off) / _MIB:.1f} MiB)",
        ),
        Figure(
            "canvas_idle_cpu",
            cpu_on,
            "% core",
            note=f"over {IDLE_CPU_S:g} s idle with [canvas] on (watcher thread); "
            f"canvas off: {cpu_off:.2f} % core",
        ),
        Figure(
            "canvas_reload_p50",
            median(latencies) * 1000,
            "ms",
            note=f"file write -> reload notice on the live-reload socket, {RELOADS} writes",
        ),
        Figure(
            "canvas_reload_p99",
            percentile(latencies, 0.99) * 1000,
            "ms",
            note="a batch ends 100 ms after the last change (watchfiles step)",
        ),
        Figure(
            "canvas_get_rps",
            gets,
            "req/s",
            asset,
            note=f"{GETS} GETs of a {_FILE_BYTES // 1024} KiB canvas file, {GET_CONCURRENCY} "
            "at once; baseline: the same gateway's WebChat app.js served from memory",
        ),
    ]
