"""WhatsApp (Cloud API): echo round trips through Meta's webhooks and the Graph API stand-in.

The stand-in (`tests/fakes/whatsapp_cloud.py`: the Graph API + Meta's signed webhook sender)
runs in this process; the gateway is a subprocess with `[channels.whatsapp]` pointing its
`graph_base` at it (the three secrets from the environment). A round trip: the stand-in POSTs
a signed `messages` notification to `/channels/whatsapp/default` -> the gateway checks the
signature, dedupes, persists, answers 200 -> access, session, echo run -> `POST
/{phone-number-id}/messages` carrying the echo reaches the stand-in. The baseline is a bare
echo bot in this process (raw aiohttp: a webhook server that checks the same signature,
answers 200 and posts the same text back) against the same stand-in: the webhook and Graph
loop alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Final

import aiohttp
from aiohttp import web
from tests.fakes.whatsapp_cloud import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    FakeWhatsApp,
)

from .channel_figures import echo_figures
from .procs import Servers
from .report import Figure

__all__ = ["WHATSAPP_ROUND_TRIPS", "measure_whatsapp"]

WHATSAPP_ROUND_TRIPS: Final = 200
WARMUP: Final = 20
_CONFIG: Final = (
    '[agent]\nbackend = "echo"\necho_delay_ms = 0\n'
    '[channels.whatsapp]\ndm_policy = "open"\ndebounce_ms = 0\n'
    'phone_number_id = "{phone}"\ngraph_base = "{graph}"\n'
)


async def _round_trips(fake: FakeWhatsApp, count: int, user: str) -> list[float]:
    """Send `count` DMs one after another; return each reply's delay in ms."""
    samples = []
    for n in range(count):
        marker = f"rt-{user}-{n}"
        started = time.perf_counter()
        await fake.user_says(f"ping {marker}", user=user)
        await fake.wait_sent(lambda s, m=marker: m in s.text, timeout=30)  # type: ignore[misc]
        samples.append((time.perf_counter() - started) * 1000)
    return samples


class _BareEchoBot:
    """The baseline: a webhook receiver and a Graph API send with raw aiohttp, no gateway."""

    def __init__(self, graph_base: str) -> None:
        self._graph = graph_base
        self._http: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhook", self._on_post)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/webhook"
        self._http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {ACCESS_TOKEN}"})

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _on_post(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-Hub-Signature-256", ""), expected):
            return web.Response(status=401)
        for entry in json.loads(body)["entry"]:
            for change in entry["changes"]:
                for message in change["value"].get("messages", []):
                    task = asyncio.create_task(self._echo(message["from"], message["text"]["body"]))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        return web.Response(text="ok")

    async def _echo(self, to: str, text: str) -> None:
        assert self._http is not None
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": False, "body": text},
        }
        url = f"{self._graph}/{PHONE_NUMBER_ID}/messages"
        async with self._http.post(url, json=payload) as response:
            await response.read()


async def _baseline(fake: FakeWhatsApp) -> list[float]:
    bot = _BareEchoBot(fake.graph_base)
    await bot.start()
    try:
        fake.target(bot.url)
        await _round_trips(fake, WARMUP, "15550002222")
        return await _round_trips(fake, WHATSAPP_ROUND_TRIPS, "15550002222")
    finally:
        await bot.stop()


async def _wait_served(fake: FakeWhatsApp, timeout: float = 30.0) -> None:
    """Wait until the gateway's webhook answers the verification handshake."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                if (await fake.verify())[0] == 200:
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def measure_whatsapp(servers: Servers, http: aiohttp.ClientSession) -> list[Figure]:
    """Measure WhatsApp echo round trips against a bare webhook bot on the same stand-in."""
    fake = FakeWhatsApp()
    await fake.start()
    try:
        baseline = await _baseline(fake)
        fake.sent.clear()
        env = {
            "CLAWGATE_WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
            "CLAWGATE_WHATSAPP_APP_SECRET": APP_SECRET,
            "CLAWGATE_WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
        }
        config = _CONFIG.format(phone=PHONE_NUMBER_ID, graph=fake.graph_base)
        gateway = servers.gateway(config, extra_env=env)
        await gateway.wait_ready(http)
        fake.target(f"http://127.0.0.1:{gateway.port}/channels/whatsapp/default")
        await _wait_served(fake)
        await _round_trips(fake, WARMUP, "15550003333")
        samples = await _round_trips(fake, WHATSAPP_ROUND_TRIPS, "15550004444")
    finally:
        await fake.stop()
    note = (
        f"{WHATSAPP_ROUND_TRIPS} DMs one after another (after {WARMUP} warm-up), echo agent, "
        "dm_policy open, debounce_ms 0; baseline: a bare aiohttp webhook echo bot on the same "
        "stand-in"
    )
    return echo_figures("whatsapp", samples, baseline, note)
