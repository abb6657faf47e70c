"""Discord: echo round trips and a 1,000-message burst through the gateway, on the stand-in.

The stand-in (`tests/fakes/discord_api.py`: REST v10 + the gateway WebSocket) runs in this
process; the gateway is a subprocess with `[channels.discord]` pointing at it (the token
from the environment). A round trip: the stand-in sends a MESSAGE_CREATE dispatch over the
gateway socket -> `channels/discord.py` in the gateway reads it -> dedupe, access, session,
echo run -> `POST /channels/{id}/messages` reaches the stand-in. The baseline is a bare echo
bot in this process (raw aiohttp: `GET /gateway/bot`, HELLO, IDENTIFY, then a POST of the
same text for each MESSAGE_CREATE) against the same stand-in: the gateway loop alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Final

import aiohttp
from tests.fakes.discord_api import BOT_TOKEN, FakeDiscord

from .channel_figures import burst_figures, echo_figures, tally_burst
from .procs import Servers
from .report import Figure

__all__ = ["DISCORD_BURST", "DISCORD_ROUND_TRIPS", "DISCORD_SENDERS", "measure_discord"]

DISCORD_ROUND_TRIPS: Final = 200
WARMUP: Final = 20
DISCORD_BURST: Final = 1000
DISCORD_SENDERS: Final = 100
_CONFIG: Final = (
    '[agent]\nbackend = "echo"\necho_delay_ms = 0\n'
    '[channels.discord]\ndm_policy = "open"\ndebounce_ms = 0\napi_base = "{base}"\n'
)


async def _round_trips(fake: FakeDiscord, count: int, user: str) -> list[float]:
    """Send `count` DMs one after another; return each reply's delay in ms."""
    samples = []
    for n in range(count):
        marker = f"rt-{user}-{n}"
        started = time.perf_counter()
        await fake.user_says(f"ping {marker}", user=user)
        await fake.wait_posted(lambda p, m=marker: m in p.content, timeout=30)  # type: ignore[misc]
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _bare_echo_bot(fake: FakeDiscord, ready: asyncio.Event) -> None:
    """The baseline: the gateway and REST with raw aiohttp, no gateway process."""
    headers = {"Authorization": f"Bot {BOT_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.get(f"{fake.api_base}/gateway/bot") as response:
            url = (await response.json())["url"]
        async with http.ws_connect(f"{url}/?v=10&encoding=json") as ws:
            await ws.receive()  # HELLO; no heartbeats: a run is shorter than the interval
            identify = {"token": BOT_TOKEN, "intents": 1 << 15 | 1 << 12, "properties": {}}
            await ws.send_json({"op": 2, "d": identify})
            async for frame in ws:
                data = json.loads(frame.data)
                if data.get("t") == "READY":
                    ready.set()
                if data.get("t") != "MESSAGE_CREATE":
                    continue
                message = data["d"]
                body = {"content": message["content"]}
                async with http.post(
                    f"{fake.api_base}/channels/{message['channel_id']}/messages", json=body
                ) as response:
                    await response.read()


async def _baseline(fake: FakeDiscord) -> list[float]:
    ready = asyncio.Event()
    bot = asyncio.create_task(_bare_echo_bot(fake, ready))
    try:
        await ready.wait()
        await _round_trips(fake, WARMUP, "1600000000000000001")
        return await _round_trips(fake, DISCORD_ROUND_TRIPS, "1600000000000000001")
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await bot


async def _burst(fake: FakeDiscord) -> tuple[float, int, int]:
    """Send DISCORD_BURST DMs from DISCORD_SENDERS people at once; return (s, dupes, lost)."""
    markers = [f"burst-{n}" for n in range(DISCORD_BURST)]
    started = time.perf_counter()
    for n, marker in enumerate(markers):
        await fake.user_says(
            f"go {marker}", user=str(1_700_000_000_000_000_000 + n % DISCORD_SENDERS)
        )
    await fake.wait_posted(lambda p: "burst-" in p.content, count=DISCORD_BURST, timeout=120)
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.5)  # a late duplicate would land here
    replies = [posted.content for posted in fake.posted if posted.kind == "message"]
    return elapsed, *tally_burst(markers, replies)


async def measure_discord(servers: Servers, http: aiohttp.ClientSession) -> list[Figure]:
    """Measure Discord echo round trips against a bare gateway bot, and the burst."""
    fake = FakeDiscord()
    await fake.start()
    try:
        baseline = await _baseline(fake)
        fake.posted.clear()
        env = {"CLAWGATE_DISCORD_BOT_TOKEN": BOT_TOKEN}
        gateway = servers.gateway(_CONFIG.format(base=fake.api_base), extra_env=env)
        await gateway.wait_ready(http)
        await fake.wait_ready(2, timeout=30)  # the baseline's session, then the gateway's
        await _round_trips(fake, WARMUP, "1600000000000000002")
        samples = await _round_trips(fake, DISCORD_ROUND_TRIPS, "1600000000000000003")
        elapsed, duplicates, lost = await _burst(fake)
    finally:
        await fake.stop()
    note = (
        f"{DISCORD_ROUND_TRIPS} DMs one after another (after {WARMUP} warm-up), echo agent, "
        "dm_policy open, debounce_ms 0; baseline: a bare aiohttp gateway echo bot on the "
        "same stand-in"
    )
    burst = f"{DISCORD_BURST} DMs from {DISCORD_SENDERS} senders sent at once"
    return [
        *echo_figures("discord", samples, baseline, note),
        *burst_figures("discord", DISCORD_BURST, elapsed, duplicates, lost, burst),
    ]
