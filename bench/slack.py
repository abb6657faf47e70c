"""Slack: echo round trips (Socket Mode, Events API) and a 1,000-DM burst, on the stand-in.

The stand-in (`tests/fakes/slack_api.py`: Web API + Socket Mode) runs in this process; the
gateway is a subprocess with `[channels.slack]` pointing at it (both tokens from the
environment). A round trip: the stand-in sends an `events_api` envelope over the socket ->
slack-sdk's SocketModeClient in the gateway reads it -> dedupe, access, session, echo run,
ack -> `chat.postMessage` reaches the stand-in. The baseline is a bare echo bot in this
process (raw aiohttp: `apps.connections.open`, the WebSocket, ack, `chat.postMessage` with
the same text) against the same stand-in: the Socket Mode loop alone.

Events API round trips: the stand-in POSTs each signed `event_callback` to a second gateway
(`mode = "events"`, `/channels/slack/default`), which verifies it, persists it, answers 200
and posts the echo. Its baseline is a bare aiohttp webhook in this process that checks the
same HMAC and timestamp window, answers 200 and posts the echo with the same text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from typing import Final

import aiohttp
from aiohttp import web
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack

from .channel_figures import burst_figures, echo_figures, tally_burst
from .procs import Servers, free_port
from .report import Figure

__all__ = [
    "SLACK_BURST",
    "SLACK_EVENTS_ROUND_TRIPS",
    "SLACK_ROUND_TRIPS",
    "SLACK_SENDERS",
    "measure_slack",
]

SLACK_ROUND_TRIPS: Final = 200
WARMUP: Final = 20
SLACK_BURST: Final = 1000
SLACK_SENDERS: Final = 100
SLACK_EVENTS_ROUND_TRIPS: Final = 200
_CONFIG: Final = (
    '[agent]\nbackend = "echo"\necho_delay_ms = 0\n'
    '[channels.slack]\ndm_policy = "open"\ndebounce_ms = 0\napi_base = "{base}"\n'
)
_EVENTS_CONFIG: Final = _CONFIG + 'mode = "events"\n'


async def _round_trips(fake: FakeSlack, count: int, user: str) -> list[float]:
    """Send `count` DMs one after another; return each reply's delay in ms."""
    samples = []
    for n in range(count):
        marker = f"rt-{user}-{n}"
        started = time.perf_counter()
        await fake.user_says(f"ping {marker}", user=user, channel=f"D{user}")
        await fake.wait_posted(lambda p, m=marker: m in p.text, timeout=30)  # type: ignore[misc]
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def _bare_echo_bot(fake: FakeSlack, connected: asyncio.Event) -> None:
    """The baseline: Socket Mode and `chat.postMessage` with raw aiohttp, no SDK, no gateway."""
    async with aiohttp.ClientSession() as http:
        app = {"Authorization": f"Bearer {APP_TOKEN}"}
        bot = {"Authorization": f"Bearer {BOT_TOKEN}"}
        async with http.post(f"{fake.api_base}apps.connections.open", headers=app) as response:
            url = (await response.json())["url"]
        async with http.ws_connect(url) as ws:
            connected.set()
            async for frame in ws:
                data = json.loads(frame.data)
                if data.get("type") != "events_api":
                    continue
                await ws.send_json({"envelope_id": data["envelope_id"]})
                event = data["payload"]["event"]
                body = {"channel": event["channel"], "text": event["text"]}
                async with http.post(
                    f"{fake.api_base}chat.postMessage", json=body, headers=bot
                ) as response:
                    await response.read()


async def _baseline(fake: FakeSlack) -> list[float]:
    connected = asyncio.Event()
    bot = asyncio.create_task(_bare_echo_bot(fake, connected))
    try:
        await connected.wait()
        await _round_trips(fake, WARMUP, "U0BASE")
        return await _round_trips(fake, SLACK_ROUND_TRIPS, "U0BASE")
    finally:
        bot.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await bot


async def _bare_events_bot(http: aiohttp.ClientSession, fake: FakeSlack) -> web.AppRunner:
    """The Events API baseline: check the signature and window, answer, post the echo."""
    bot = {"Authorization": f"Bearer {BOT_TOKEN}"}

    async def event(request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers["X-Slack-Request-Timestamp"]
        base = b"v0:" + stamp.encode() + b":" + body
        digest = "v0=" + hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
        if abs(time.time() - int(stamp)) > 300 or not hmac.compare_digest(
            digest, request.headers["X-Slack-Signature"]
        ):
            return web.Response(status=401)
        event = json.loads(body)["event"]
        reply = {"channel": event["channel"], "text": event["text"]}
        async with http.post(f"{fake.api_base}chat.postMessage", json=reply, headers=bot) as r:
            await r.read()
        return web.Response()

    app = web.Application()
    app.router.add_post("/events", event)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.request_url = f"http://127.0.0.1:{port}/events"
    return runner


async def _events(
    servers: Servers, http: aiohttp.ClientSession, fake: FakeSlack
) -> tuple[list[float], list[float]]:
    """Events API round trips: (the gateway's, the bare webhook's), in ms."""
    bare = await _bare_events_bot(http, fake)
    try:
        await _round_trips(fake, WARMUP, "U0EBASE")
        baseline = await _round_trips(fake, SLACK_EVENTS_ROUND_TRIPS, "U0EBASE")
    finally:
        await bare.cleanup()
    env = {"CLAWGATE_SLACK_BOT_TOKEN": BOT_TOKEN, "CLAWGATE_SLACK_SIGNING_SECRET": SIGNING_SECRET}
    gateway = servers.gateway(_EVENTS_CONFIG.format(base=fake.api_base), extra_env=env)
    await gateway.wait_ready(http)
    fake.request_url = f"http://127.0.0.1:{gateway.port}/channels/slack/default"
    async with asyncio.timeout(30):  # the webhook is served once auth.test answered
        while (await fake.verify_url("ready"))[0] != 200:
            await asyncio.sleep(0.1)
    await _round_trips(fake, WARMUP, "U0EWARM")
    return await _round_trips(fake, SLACK_EVENTS_ROUND_TRIPS, "U0EBENCH"), baseline


async def _burst(fake: FakeSlack) -> tuple[float, int, int]:
    """Send SLACK_BURST DMs from SLACK_SENDERS people at once; return (s, duplicates, lost)."""
    markers = [f"burst-{n}" for n in range(SLACK_BURST)]
    started = time.perf_counter()
    for n, marker in enumerate(markers):
        user = f"U{100_000 + n % SLACK_SENDERS}"
        await fake.user_says(f"go {marker}", user=user, channel=f"D{user}")
    await fake.wait_posted(lambda p: "burst-" in p.text, count=SLACK_BURST, timeout=120)
    elapsed = time.perf_counter() - started
    await asyncio.sleep(0.5)  # a late duplicate would land here
    replies = [p.text for p in fake.posted if p.method == "chat.postMessage"]
    return elapsed, *tally_burst(markers, replies)


async def measure_slack(servers: Servers, http: aiohttp.ClientSession) -> list[Figure]:
    """Measure Slack echo round trips against a bare Socket Mode bot, and the burst."""
    fake = FakeSlack()
    await fake.start()
    try:
        baseline = await _baseline(fake)
        fake.posted.clear()
        env = {"CLAWGATE_SLACK_BOT_TOKEN": BOT_TOKEN, "CLAWGATE_SLACK_APP_TOKEN": APP_TOKEN}
        gateway = servers.gateway(_CONFIG.format(base=fake.api_base), extra_env=env)
        await gateway.wait_ready(http)
        await fake.wait_connections(2, timeout=30)  # the baseline's, then the gateway's
        await _round_trips(fake, WARMUP, "U0WARM")
        samples = await _round_trips(fake, SLACK_ROUND_TRIPS, "U0BENCH")
        elapsed, duplicates, lost = await _burst(fake)
        events, events_baseline = await _events(servers, http, fake)
    finally:
        await fake.stop()
    note = (
        f"{SLACK_ROUND_TRIPS} DMs one after another (after {WARMUP} warm-up), echo agent, "
        "dm_policy open, debounce_ms 0; baseline: a bare aiohttp Socket Mode echo bot on the "
        "same stand-in"
    )
    burst = f"{SLACK_BURST} DMs from {SLACK_SENDERS} senders sent at once"
    events_note = (
        f"{SLACK_EVENTS_ROUND_TRIPS} signed event_callback POSTs one after another, "
        "mode events; baseline: a bare aiohttp webhook checking the same signature"
    )
    return [
        *echo_figures("slack", samples, baseline, note),
        *burst_figures("slack", SLACK_BURST, elapsed, duplicates, lost, burst),
        *echo_figures("slack_events", events, events_baseline, events_note),
    ]
