"""Channels: Telegram echo round trips and a 1,000-message burst, on the Bot API stand-in.

The stand-in (`tests/fakes/telegram_api.py`) runs in this process; the gateway is a
subprocess with `[channels.telegram]` pointing at it (the token comes from the
environment). A round trip is: the stand-in queues a user's message (a long poll is
waiting) -> the gateway's adapter receives it -> dedupe, access, session, echo run ->
`sendMessage` reaches the stand-in. The baseline is a bare echo bot in this process (raw
aiohttp: `getUpdates` long poll, then `sendMessage` with the same text) against the same
stand-in, so the ratio is what the channel layer and the agent add to the HTTP loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Final

import aiohttp
from tests.fakes.telegram_api import BOT_TOKEN, FakeTelegram

from .channel_figures import burst_figures, echo_figures, tally_burst
from .procs import Servers
from .report import Figure

__all__ = ["BURST", "ROUND_TRIPS", "SENDERS", "measure_channels"]

ROUND_TRIPS: Final = 200
WARMUP: Final = 20
BURST: Final = 1000
SENDERS: Final = 100
_CONFIG: Final = (
    '[agent]\nbackend = "echo"\necho_delay_ms = 0\n'
    "[channels.telegram]\n"
    'dm_policy = "open"\ndebounce_ms = 0\npoll_timeout_s = 25\napi_base = "{base}"\n'
)


async def _round_trips(fake: FakeTelegram, count: int, user: int) -> list[float]:
    """Send `count` messages one after another; return each reply's delay in ms."""
    samples = []
    for n in range(count):
        marker = f"rt-{user}-{n}"
        started = time.perf_counter()
        fake.user_says(f"ping {marker}", user_id=user)
        await fake.wait_sent(lambda s, m=marker: m in s.text, timeout=30)  # type: ignore[misc]
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _bare_echo_bot(fake: FakeTelegram, stop: asyncio.Event) -> None:
    """The baseline: long-poll and echo with raw HTTP, no framework and no gateway."""
    base = f"{fake.api_base}/bot{BOT_TOKEN}"
    offset = 0
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            params = {"offset": offset, "timeout": 1}
            async with http.post(f"{base}/getUpdates", json=params) as response:
                updates = (await response.json())["result"]
            for update in updates:
                offset = update["update_id"] + 1
                message = update.get("message") or {}
                body = {"chat_id": message["chat"]["id"], "text": message.get("text", "")}
                async with http.post(f"{base}/sendMessage", json=body) as response:
                    await response.read()


async def _baseline(fake: FakeTelegram) -> list[float]:
    stop = asyncio.Event()
    bot = asyncio.create_task(_bare_echo_bot(fake, stop))
    try:
        await _round_trips(fake, WARMUP, 1)
        return await _round_trips(fake, ROUND_TRIPS, 1)
    finally:
        stop.set()
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await bot


async def _burst(fake: FakeTelegram) -> tuple[float, int, int]:
    """Queue BURST messages from SENDERS people at once; return (seconds, duplicates, lost)."""
    markers = [f"burst-{n}" for n in range(BURST)]
    started = time.perf_counter()
    for n, marker in enumerate(markers):
        fake.user_says(f"go {marker}", user_id=100_000 + n % SENDERS)
    await fake.wait_sent(lambda s: "burst-" in s.text, count=BURST, timeout=120)
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.5)  # a late duplicate would land here
    replies = [sent.text for sent in fake.sent if sent.method == "sendMessage"]
    return elapsed, *tally_burst(markers, replies)


async def measure_channels(servers: Servers, http: aiohttp.ClientSession) -> list[Figure]:
    """Measure Telegram echo round trips against a bare bot, and the burst."""
    fake = FakeTelegram()
    await fake.start()
    try:
        baseline = await _baseline(fake)
        fake.sent.clear()
        gateway = servers.gateway(
            _CONFIG.format(base=fake.api_base), extra_env={"CLAWGATE_TELEGRAM_TOKEN": BOT_TOKEN}
        )
        await gateway.wait_ready(http)
        await _round_trips(fake, WARMUP, 2)
        samples = await _round_trips(fake, ROUND_TRIPS, 3)
        rss_before = gateway.rss_bytes()
        elapsed, duplicates, lost = await _burst(fake)
        rss_after = gateway.rss_bytes()
    finally:
        await fake.stop()
    note = (
        f"{ROUND_TRIPS} messages one after another (after {WARMUP} warm-up), echo agent, "
        "dm_policy open, debounce_ms 0; baseline: a bare aiohttp echo bot on the same stand-in"
    )
    mib = 1024 * 1024
    burst = (
        f"{BURST} messages from {SENDERS} senders queued at once; gateway RSS "
        f"{rss_before / mib:.1f} -> {rss_after / mib:.1f} MiB"
    )
    return [
        *echo_figures("telegram", samples, baseline, note),
        *burst_figures("telegram", BURST, elapsed, duplicates, lost, burst),
        Figure("telegram_burst_rss_after", rss_after / mib, "MiB", baseline=rss_before / mib),
    ]
