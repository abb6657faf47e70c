"""Signal: echo round trips through signal-cli's HTTP daemon, on the stand-in.

The stand-in (`tests/fakes/signal_cli.py`: JSON-RPC + the SSE event stream) runs in this
process; the gateway is a subprocess with `[channels.signal]` pointing at it. A round trip:
the stand-in queues a `receive` event -> the gateway's event stream reads it -> dedupe,
access, session, echo run, cursor saved -> the JSON-RPC `send` carrying the echo reaches the
stand-in. The baseline is a bare echo bot in this process (raw aiohttp: the event stream, a
`send` with the same text) against the same stand-in: the daemon's loop alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Final

import aiohttp
from tests.fakes.signal_cli import ACCOUNT, FakeSignalCli

from clawgate.channels.sse import SseDecoder

from .channel_figures import echo_figures
from .procs import Servers
from .report import Figure

__all__ = ["SIGNAL_ROUND_TRIPS", "measure_signal"]

SIGNAL_ROUND_TRIPS: Final = 200
WARMUP: Final = 20
_CONFIG: Final = (
    '[agent]\nbackend = "echo"\necho_delay_ms = 0\n'
    '[channels.signal]\ndm_policy = "open"\ndebounce_ms = 0\naccount = "{account}"\n'
    'http_url = "{url}"\n'
)


async def _round_trips(fake: FakeSignalCli, count: int, number: str) -> list[float]:
    """Send `count` DMs one after another; return each reply's delay in ms."""
    samples = []
    for n in range(count):
        marker = f"rt-{number}-{n}"
        started = time.perf_counter()
        await fake.user_says(f"ping {marker}", number=number)
        await fake.wait_matching(lambda s, m=marker: m in s.message, timeout=30)  # type: ignore[misc]
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _bare_echo_bot(fake: FakeSignalCli, connected: asyncio.Event) -> None:
    """The baseline: the event stream and JSON-RPC `send` with raw aiohttp, no gateway."""
    decoder = SseDecoder(1 << 20)
    timeout = aiohttp.ClientTimeout(total=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.get(f"{fake.http_url}/api/v1/events", params={"account": ACCOUNT}) as events,
    ):
        connected.set()
        async for chunk in events.content.iter_any():
            for event in decoder.feed(chunk):
                envelope = json.loads(event.data)["envelope"]
                body = {
                    "jsonrpc": "2.0",
                    "method": "send",
                    "params": {
                        "recipient": [envelope["sourceNumber"]],
                        "message": envelope["dataMessage"]["message"],
                        "account": ACCOUNT,
                    },
                    "id": event.id,
                }
                async with http.post(f"{fake.http_url}/api/v1/rpc", json=body) as response:
                    await response.read()


async def _baseline(fake: FakeSignalCli) -> list[float]:
    connected = asyncio.Event()
    bot = asyncio.create_task(_bare_echo_bot(fake, connected))
    try:
        await connected.wait()
        await _round_trips(fake, WARMUP, "+15550002222")
        return await _round_trips(fake, SIGNAL_ROUND_TRIPS, "+15550002222")
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await bot


async def measure_signal(servers: Servers, http: aiohttp.ClientSession) -> list[Figure]:
    """Measure Signal echo round trips against a bare event-stream bot on the same stand-in."""
    fake = FakeSignalCli(keepalive_s=15.0)
    await fake.start()
    try:
        baseline = await _baseline(fake)
        fake.sent.clear()
        gateway = servers.gateway(_CONFIG.format(account=ACCOUNT, url=fake.http_url))
        await gateway.wait_ready(http)
        await fake.wait_streams(2, timeout=30)  # the baseline's, then the gateway's
        await _round_trips(fake, WARMUP, "+15550003333")
        samples = await _round_trips(fake, SIGNAL_ROUND_TRIPS, "+15550004444")
    finally:
        await fake.stop()
    note = (
        f"{SIGNAL_ROUND_TRIPS} DMs one after another (after {WARMUP} warm-up), echo agent, "
        "dm_policy open, debounce_ms 0; baseline: a bare aiohttp event-stream echo bot on the "
        "same stand-in"
    )
    return echo_figures("signal", samples, baseline, note)
