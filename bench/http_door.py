"""The gateway's HTTP door under load: what its guard costs a request, and slow clients held.

Every connection to the gateway's port goes through `gateway/http_admission.py`: a per-address
count and a read timer armed for the headers, again for the body and once more after each
response. `http_healthz_rps` is keep-alive `GET /healthz` through it against the echo
server's `GET /readyz` (a bare aiohttp app, the same small JSON answer): the ratio bounds
that cost (it also holds the gateway's other middleware and its larger route table).
`http_healthz_rps_slowloris` is the same load while `SLOW_CLIENTS` connections from the same
address hold half-sent request headers (under the per-address cap with the load's own
connections), against the clean figure of the same run: is the owner still served at speed?
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

import aiohttp

from .procs import ServerProcess
from .report import Figure

__all__ = ["HTTP_CONNECTIONS", "SLOW_CLIENTS", "measure_http_door"]

#: Keep-alive connections the load runs on, each one request at a time.
HTTP_CONNECTIONS: Final = 16
#: Half-open requests held during the third slice of each round (16 + 40: under the cap).
SLOW_CLIENTS: Final = 40
WARMUP_S: Final = 0.5
#: The three runs alternate in short slices, so the shared machine's load hits them alike.
ROUNDS: Final = 6
SLICE_S: Final = 0.5


class _Load:
    """`HTTP_CONNECTIONS` keep-alive sockets sending GETs of one URL, one at a time each."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=HTTP_CONNECTIONS))

    async def run(self, seconds: float) -> tuple[int, float]:
        """Send GETs for `seconds`; return how many completed and the time taken."""
        started = time.monotonic()
        until = started + seconds

        async def worker() -> int:
            done = 0
            while time.monotonic() < until:
                async with self._http.get(self._url) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"GET {self._url} answered {response.status}")
                done += 1
            return done

        counts = await asyncio.gather(*(worker() for _ in range(HTTP_CONNECTIONS)))
        return sum(counts), time.monotonic() - started

    async def close(self) -> None:
        await self._http.close()


async def _hold_slow_clients(port: int) -> list[asyncio.StreamWriter]:
    """Open `SLOW_CLIENTS` connections that send part of a request's headers and stop."""
    writers = []
    for _ in range(SLOW_CLIENTS):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        await writer.drain()
        writers.append(writer)
    return writers


async def measure_http_door(gateway: ServerProcess, echo: ServerProcess) -> list[Figure]:
    """Keep-alive GETs through the guarded port vs a bare aiohttp app; then with slowloris."""
    # One gateway load for both gateway runs: its 16 sockets plus the slow 40 stay under 64.
    through_door = _Load(f"http://127.0.0.1:{gateway.port}/healthz")
    bare = _Load(f"http://127.0.0.1:{echo.port}/readyz")
    totals = {"clean": [0, 0.0], "bare": [0, 0.0], "held": [0, 0.0]}

    def add(run: str, outcome: tuple[int, float]) -> None:
        totals[run][0] += outcome[0]
        totals[run][1] += outcome[1]

    try:
        await through_door.run(WARMUP_S)
        await bare.run(WARMUP_S)
        for _ in range(ROUNDS):
            add("clean", await through_door.run(SLICE_S))
            add("bare", await bare.run(SLICE_S))
            writers = await _hold_slow_clients(gateway.port)
            try:
                # Well inside the gateway's 10 s read timeout: every slow client is held.
                add("held", await through_door.run(SLICE_S))
            finally:
                for writer in writers:
                    writer.close()
    finally:
        await through_door.close()
        await bare.close()
    rate = {run: done / seconds for run, (done, seconds) in totals.items()}
    load = (
        f"{HTTP_CONNECTIONS} keep-alive connections, one GET at a time each, "
        f"{ROUNDS} alternating slices of {SLICE_S} s"
    )
    return [
        Figure(
            "http_healthz_rps",
            rate["clean"],
            "req/s",
            rate["bare"],
            note=f"{load}; baseline: the echo server's /readyz (bare aiohttp)",
        ),
        Figure(
            "http_healthz_rps_slowloris",
            rate["held"],
            "req/s",
            rate["clean"],
            note=f"{load}, {SLOW_CLIENTS} half-sent requests held; baseline: without them",
        ),
    ]
