"""WebChat through its channel adapter: `send` on `webchat` against `chat.inject` in one gateway."""

from __future__ import annotations

import time
import uuid
from typing import Final

import aiohttp

from .chat import ECHO_CONFIG, _client
from .procs import Servers
from .report import Figure, median, percentile

__all__ = ["WEBCHAT_SENDS", "measure_webchat"]

WEBCHAT_SENDS: Final = 200
_TEXT: Final = "the quick brown fox jumps over the lazy dog"


async def measure_webchat(
    servers: Servers, http: aiohttp.ClientSession, token: str
) -> list[Figure]:
    """Time `send` to the main session through the adapter, baseline `chat.inject` there."""
    gateway = servers.gateway(ECHO_CONFIG)
    await gateway.wait_ready(http)
    client = _client(gateway.ws_url, token)
    await client.connect()
    sends: list[float] = []
    injects: list[float] = []
    try:
        # Interleaved, so both see the same transcript size and the same machine noise.
        for _ in range(WEBCHAT_SENDS):
            began = time.perf_counter()
            await client.call(
                "send",
                {
                    "to": "main",
                    "message": _TEXT,
                    "channel": "webchat",
                    "idempotencyKey": str(uuid.uuid4()),
                },
            )
            sends.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            await client.call("chat.inject", {"sessionKey": "main", "message": _TEXT})
            injects.append((time.perf_counter() - began) * 1000)
    finally:
        await client.close()
        servers.stop(gateway)
    note = (
        f"{WEBCHAT_SENDS} `send` calls (channel webchat, to main: Outbox, adapter, transcript,"
        " chat event, channel_outbound row), each followed by one `chat.inject` (transcript only)"
    )
    return [
        Figure("webchat_send_p50", median(sends), "ms", baseline=median(injects), note=note),
        Figure(
            "webchat_send_p99", percentile(sends, 0.99), "ms", baseline=percentile(injects, 0.99)
        ),
    ]
