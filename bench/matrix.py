"""Matrix: echo round trips through a real Synapse homeserver, against a bare nio echo bot.

Synapse (`tests/integration/channels/synapse.py`: SQLite, loopback, rate limits raised)
runs as a subprocess; the human is a matrix-nio client in this process, syncing in the
background. A round trip is: the human's `room_send` of a DM -> Synapse -> the bot's
waiting `/sync` -> (the gateway: dedupe, access, session, echo run, typing) -> the bot's
`room_send` -> Synapse -> the human's waiting `/sync` returns it. The baseline is a bare
echo bot in this process on matrix-nio (`/sync` long poll, then `room_send` of the same
text) on the same homeserver, so the ratio is what the gateway adds to the homeserver's
own loop; both include two Synapse writes and two sync wake-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any, Final

import aiohttp
from nio import AsyncClient, SyncResponse
from tests.integration.channels.matrix_human import Human
from tests.integration.channels.synapse import MatrixAccount, Synapse

from .channel_figures import echo_figures
from .procs import Servers
from .report import Figure

__all__ = ["MATRIX_ROUND_TRIPS", "measure_matrix"]

MATRIX_ROUND_TRIPS: Final = 100
WARMUP: Final = 10
_CONFIG: Final = (
    '[agent]\nbackend = "echo"\necho_delay_ms = 0\n'
    "[channels.matrix]\n"
    'homeserver = "{url}"\nuser_id = "{user}"\n'
    'dm_policy = "open"\ndebounce_ms = 0\nsync_timeout_s = 30\n'
)


async def _round_trips(human: Human, room: str, bot: str, count: int, tag: str) -> list[float]:
    """Say `count` things one after another; return each echo's delay in ms."""
    samples = []
    for n in range(count):
        marker = f"rt-{tag}-{n}"
        started = time.perf_counter()
        await human.say(room, f"ping {marker}")
        await human.next_message(room, bot, marker, timeout=60)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _bare_echo_bot(url: str, account: MatrixAccount) -> None:
    """The baseline: join every invite, echo every text from someone else; nothing more."""
    client = AsyncClient(url, account.user_id, device_id=account.device_id)
    client.access_token, client.user_id = account.access_token, account.user_id
    try:
        since = None
        while True:
            answer = await client.sync(timeout=30_000, since=since)
            if not isinstance(answer, SyncResponse):
                await asyncio.sleep(0.1)
                continue
            for room_id in answer.rooms.invite:
                await client.join(room_id)
            if since is not None:
                for room_id, info in answer.rooms.join.items():
                    for event in info.timeline.events:
                        source: dict[str, Any] = event.source
                        content = source.get("content") or {}
                        if source.get("sender") != account.user_id and content.get("body"):
                            body = {"msgtype": "m.text", "body": content["body"]}
                            await client.room_send(room_id, "m.room.message", body)
            since = answer.next_batch
    finally:
        await client.close()


async def _dm(human: Human, bot: str) -> str:
    """Open a DM with `bot` and wait until it joined."""
    room = await human.dm(bot)
    async with asyncio.timeout(120):
        while human.membership(room, bot) != "join":
            await asyncio.sleep(0.05)
    return room


async def measure_matrix(
    servers: Servers, http: aiohttp.ClientSession, workdir: Path
) -> list[Figure]:
    """Measure Matrix echo round trips through the gateway against a bare nio bot."""
    synapse = Synapse(workdir / "synapse")
    await asyncio.to_thread(synapse.start)
    human: Human | None = None
    baseline_bot: asyncio.Task[None] | None = None
    try:
        alice = await asyncio.to_thread(synapse.register, "alice")
        bare = await asyncio.to_thread(synapse.register, "bare")
        bot = await asyncio.to_thread(synapse.register, "bot")
        human = Human(synapse.url, alice)
        await human.start()
        baseline_bot = asyncio.create_task(_bare_echo_bot(synapse.url, bare))
        room = await _dm(human, bare.user_id)
        await _round_trips(human, room, bare.user_id, WARMUP, "warm")
        baseline = await _round_trips(human, room, bare.user_id, MATRIX_ROUND_TRIPS, "base")
        baseline_bot.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await baseline_bot
        gateway = servers.gateway(
            _CONFIG.format(url=synapse.url, user=bot.user_id),
            extra_env={"CLAWGATE_MATRIX_ACCESS_TOKEN": bot.access_token},
        )
        await gateway.wait_ready(http)
        room = await _dm(human, bot.user_id)
        await _round_trips(human, room, bot.user_id, WARMUP, "gw-warm")
        samples = await _round_trips(human, room, bot.user_id, MATRIX_ROUND_TRIPS, "gw")
    finally:
        if baseline_bot is not None and not baseline_bot.done():
            baseline_bot.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await baseline_bot
        if human is not None:
            await human.close()
        await asyncio.to_thread(synapse.stop)
    note = (
        f"{MATRIX_ROUND_TRIPS} DMs one after another (after {WARMUP} warm-up) through a real "
        "Synapse (SQLite), echo agent, dm_policy open, debounce_ms 0; baseline: a bare "
        "matrix-nio echo bot on the same homeserver"
    )
    # No target: Synapse's own round trip (the baseline) is most of it.
    return echo_figures("matrix", samples, baseline, note, target=False)
