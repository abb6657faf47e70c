"""iMessage: echo round trips through BlueBubbles webhooks and its REST API, on the stand-in.

The stand-in (`tests/fakes/bluebubbles.py`) runs in this process; the gateway is a
subprocess with `[channels.imessage]` pointing at it (the password from the environment).
A round trip: the stand-in POSTs a `new-message` webhook to the URL the gateway registered
-> token check, dedupe, access, session, echo run -> `POST /api/v1/message/text` reaches
the stand-in. The baseline is a bare echo bot in this process (an aiohttp server that
registers its own webhook and answers each message with `message/text`, nothing else)
against the same stand-in: the webhook and REST loop alone.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Final

import aiohttp
from aiohttp import web
from tests.fakes.bluebubbles import PASSWORD, FakeBlueBubbles

from .channel_figures import echo_figures
from .procs import Servers
from .report import Figure

__all__ = ["IMESSAGE_ROUND_TRIPS", "measure_imessage"]

IMESSAGE_ROUND_TRIPS: Final = 200
WARMUP: Final = 20
#: The name the gateway's webhook is registered under; the stand-in maps it to its port.
_PUBLIC: Final = "http://gateway.bench"
_CONFIG: Final = (
    '[agent]\nbackend = "echo"\necho_delay_ms = 0\n'
    '[channels.imessage]\ndm_policy = "open"\ndebounce_ms = 0\n'
    'server_url = "{server}"\nwebhook_url = "{public}"\n'
)


async def _round_trips(fake: FakeBlueBubbles, count: int, sender: str) -> list[float]:
    """Send `count` DMs one after another; return each reply's delay in ms."""
    samples = []
    for n in range(count):
        marker = f"rt-{sender}-{n}"
        started = time.perf_counter()
        await fake.user_says(f"ping {marker}", sender=sender)
        await fake.wait_sent(check=lambda s, m=marker: m in s.text, timeout=30)  # type: ignore[misc]
        samples.append((time.perf_counter() - started) * 1000)
    return samples


class _BareEchoBot:
    """The baseline: a webhook server that echoes each message through the REST API."""

    def __init__(self, fake: FakeBlueBubbles) -> None:
        self._fake = fake
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        port = self._runner.addresses[0][1]
        body = {"url": f"http://127.0.0.1:{port}/hook", "events": ["new-message"]}
        await self._call("webhook", body)

    async def stop(self) -> None:
        for task in list(self._tasks):
            await task
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _call(self, path: str, body: dict[str, Any]) -> None:
        assert self._http is not None
        url = f"{self._fake.url}/api/v1/{path}"
        async with self._http.post(url, params={"guid": PASSWORD}, json=body) as response:
            await response.read()

    async def _hook(self, request: web.Request) -> web.Response:
        data = (await request.json())["data"]
        if not data["isFromMe"]:
            body = {
                "chatGuid": data["chats"][0]["guid"],
                "tempGuid": f"temp-{uuid.uuid4()}",
                "message": data["text"],
                "method": "private-api",
            }
            task = asyncio.create_task(self._call("message/text", body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.Response(text="ok")


async def _baseline(fake: FakeBlueBubbles) -> list[float]:
    bot = _BareEchoBot(fake)
    await bot.start()
    try:
        await _round_trips(fake, WARMUP, "+15550000001")
        return await _round_trips(fake, IMESSAGE_ROUND_TRIPS, "+15550000001")
    finally:
        await bot.stop()
        fake.webhooks.clear()


async def measure_imessage(servers: Servers, http: aiohttp.ClientSession) -> list[Figure]:
    """Measure iMessage echo round trips against a bare webhook + REST echo bot."""
    fake = FakeBlueBubbles()
    await fake.start()
    try:
        baseline = await _baseline(fake)
        fake.sent.clear()
        config = _CONFIG.format(server=fake.url, public=_PUBLIC)
        env = {"CLAWGATE_IMESSAGE_PASSWORD": PASSWORD}
        gateway = servers.gateway(config, extra_env=env)
        fake.reach[_PUBLIC] = f"http://127.0.0.1:{gateway.port}"
        await gateway.wait_ready(http)
        await fake.wait_webhooks(1, timeout=30)
        await _round_trips(fake, WARMUP, "+15550000002")
        samples = await _round_trips(fake, IMESSAGE_ROUND_TRIPS, "+15550000003")
    finally:
        await fake.stop()
    note = (
        f"{IMESSAGE_ROUND_TRIPS} DMs one after another (after {WARMUP} warm-up), echo agent, "
        "dm_policy open, debounce_ms 0; baseline: a bare aiohttp webhook + REST echo bot on "
        "the same stand-in"
    )
    return echo_figures("imessage", samples, baseline, note)
