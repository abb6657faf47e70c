"""The measurements, one coroutine per phase; each returns figures with their echo baseline."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp import ClientWebSocketResponse

from clawgate.protocol.limits import PRESENCE_FLUSH_INTERVAL_MS

from .load import (
    Fanout,
    FrameMaker,
    GatewayOpener,
    IdlePool,
    Opener,
    ThroughputResult,
    echo_maker,
    echo_opener,
    frame_maker,
    open_many,
    roundtrip,
    sessions,
    throughput,
    timed_connects,
)
from .procs import ServerProcess, Servers
from .report import Figure, Measure, Target, median, percentile

__all__ = [
    "measure_handshakes",
    "measure_idle_and_fanout",
    "measure_presence_join",
    "measure_startup",
    "measure_throughput",
]

STARTS: Final = 3
IDLE_CONNECTIONS: Final = 1000
SETTLE_S: Final = 1.0
FANOUT_ROUNDS: Final = 20
# Rounds further apart than the presence interval: each round's event is announced at
# once, so the figure is the fan-out's cost, not the wait for the next announcement.
FANOUT_GAP_S: Final = PRESENCE_FLUSH_INTERVAL_MS / 1000 + 0.02
HANDSHAKES: Final = 300
HANDSHAKE_WARMUP: Final = 20
THROUGHPUT_S: Final = 3.0
WARMUP_S: Final = 0.5
WINDOW: Final = 32
WIDE: Final = 64
PRESENCE_JOINS: Final = 200
PRESENCE_JOIN_BUDGET_S: Final = 30.0
_MIB: Final = 1024 * 1024


async def measure_startup(
    servers: Servers, http: aiohttp.ClientSession
) -> tuple[list[Figure], ServerProcess, ServerProcess]:
    """Start each server `STARTS` times; keep the last of each running for the next phases."""
    gateway_s: list[float] = []
    echo_s: list[float] = []
    gateway = echo = None
    for _ in range(STARTS):
        if gateway is not None and echo is not None:
            servers.stop(gateway)
            servers.stop(echo)
        gateway = servers.gateway()
        gateway_s.append(await gateway.wait_ready(http))
        echo = servers.echo()
        echo_s.append(await echo.wait_ready(http))
    assert gateway is not None and echo is not None
    runs = ", ".join(f"{seconds * 1000:.0f}" for seconds in gateway_s)
    figure = Figure(
        "startup_to_ready",
        median(gateway_s) * 1000,
        "ms",
        median(echo_s) * 1000,
        Target("<", 1000),
        f"spawn to GET /readyz 200, median of {STARTS} fresh starts ({runs} ms)",
    )
    return [figure], gateway, echo


@dataclass(frozen=True, slots=True)
class _Idle:
    """RSS before and after opening the idle pool, and the fan-out over it."""

    rss_idle: int
    rss_loaded: int
    connections: int
    fanout: Fanout


async def _idle_and_fanout(
    server: ServerProcess, open_ws: Opener, sender_opener: Opener, make: FrameMaker
) -> _Idle:
    """Measure RSS, open the idle pool, measure RSS again, run the fan-out rounds."""
    await asyncio.sleep(SETTLE_S)
    rss_idle = server.rss_bytes()
    pool = IdlePool(open_ws, IDLE_CONNECTIONS)
    (session,) = sessions(1)
    sender: ClientWebSocketResponse | None = None
    try:
        await pool.open(budget_s=60)
        await asyncio.sleep(SETTLE_S)
        rss_loaded = server.rss_bytes()
        sender = await sender_opener(session)
        fanout = await pool.fanout(
            sender, make, rounds=FANOUT_ROUNDS, round_timeout_s=5.0, gap_s=FANOUT_GAP_S
        )
        return _Idle(rss_idle, rss_loaded, len(pool), fanout)
    finally:
        if sender is not None:
            await sender.close()
        await session.close()
        await pool.close()


async def measure_idle_and_fanout(
    gateway: ServerProcess, echo: ServerProcess, token: str
) -> list[Figure]:
    """Idle RSS, RSS per idle connection and fan-out latency to the idle pool."""
    open_gateway = GatewayOpener(gateway.ws_url, token)
    trigger = frame_maker("system-event", {"text": "bench fan-out", "instanceId": "bench-fanout"})
    gw = await _idle_and_fanout(gateway, open_gateway, open_gateway, trigger)
    broadcast = echo_maker(
        "broadcast", request_bytes=len(trigger(0)), reply_bytes=gw.fanout.event_bytes
    )
    open_echo = echo_opener(echo.ws_url)
    ec = await _idle_and_fanout(echo, open_echo, open_echo, broadcast)

    def per_connection_kib(idle: _Idle) -> float:
        """Return the RSS growth per pooled socket in KiB."""
        return (idle.rss_loaded - idle.rss_idle) / max(idle.connections, 1) / 1024

    fan = f"{FANOUT_ROUNDS} rounds x {gw.connections} clients, event {gw.fanout.event_bytes} B"
    lost = f"lost {gw.fanout.lost} (echo {ec.fanout.lost})"
    return [
        Figure(
            "idle_rss",
            gw.rss_idle / _MIB,
            "MiB",
            ec.rss_idle / _MIB,
            Target("<", 60),
            f"after start-up and {SETTLE_S:g} s idle",
        ),
        Figure(
            "rss_per_idle_connection",
            per_connection_kib(gw),
            "KiB",
            per_connection_kib(ec),
            Target("<", 20),
            f"RSS delta over {gw.connections} authenticated idle sockets "
            f"({gw.rss_idle / _MIB:.1f} -> {gw.rss_loaded / _MIB:.1f} MiB)",
        ),
        Figure(
            "fanout_p50",
            percentile(gw.fanout.latencies_s, 0.50) * 1000,
            "ms",
            percentile(ec.fanout.latencies_s, 0.50) * 1000,
            note=f"system-event -> presence, {fan}",
        ),
        Figure(
            "fanout_p99",
            percentile(gw.fanout.latencies_s, 0.99) * 1000,
            "ms",
            percentile(ec.fanout.latencies_s, 0.99) * 1000,
            Target("<", 100),
            f"{lost}; max {max(gw.fanout.latencies_s, default=0) * 1000:.1f} ms",
        ),
    ]


async def measure_handshakes(
    gateway: ServerProcess, echo: ServerProcess, token: str
) -> list[Figure]:
    """Sequential connects: gateway open to `hello-ok` vs echo open plus one round trip."""
    open_gateway = GatewayOpener(gateway.ws_url, token)
    open_echo = echo_opener(echo.ws_url)
    (session,) = sessions(1)
    try:
        await timed_connects(session, open_gateway, HANDSHAKE_WARMUP, budget_s=10)
        echo_request = echo_maker(
            "echo",
            request_bytes=open_gateway.connect_bytes,
            reply_bytes=open_gateway.hello_bytes,
        )(0)

        async def echo_once(ws: ClientWebSocketResponse) -> str:
            """Do the one echo round trip that stands in for `connect`/`hello-ok`."""
            return await roundtrip(ws, "0", echo_request)

        await timed_connects(session, open_echo, HANDSHAKE_WARMUP, budget_s=10, then=echo_once)
        gw = await timed_connects(session, open_gateway, HANDSHAKES, budget_s=30)
        ec = await timed_connects(session, open_echo, HANDSHAKES, budget_s=30, then=echo_once)
    finally:
        await session.close()
    sizes = f"connect {open_gateway.connect_bytes} B, hello-ok {open_gateway.hello_bytes} B"
    return [
        Figure(
            "handshake_median",
            median(gw) * 1000,
            "ms",
            median(ec) * 1000,
            Target("<", 3),
            f"n={len(gw)} sequential; echo = ws open + 1 round trip of the same sizes",
        ),
        Figure(
            "handshake_p99",
            percentile(gw, 0.99) * 1000,
            "ms",
            percentile(ec, 0.99) * 1000,
            note=sizes,
        ),
    ]


class _CpuMeter:
    """CPU share of the server and of this load generator over one run."""

    def __init__(self, server: ServerProcess) -> None:
        self._server = server
        self._wall = time.monotonic()
        self._server_cpu = server.cpu_seconds()
        self._client_cpu = time.process_time()

    def shares(self) -> tuple[float, float]:
        """Return (server, client) CPU use since creation, as fractions of one core."""
        wall = max(time.monotonic() - self._wall, 1e-9)
        server = (self._server.cpu_seconds() - self._server_cpu) / wall
        client = (time.process_time() - self._client_cpu) / wall
        return server, client


async def _drive(
    server: ServerProcess, sockets: list[ClientWebSocketResponse], make: FrameMaker
) -> tuple[ThroughputResult, float, float]:
    """Warm up, then run one timed throughput pass; return it with CPU shares."""
    limit = 1_000_000
    await throughput(sockets, make, window=WINDOW, duration_s=WARMUP_S, limit_per_socket=limit)
    meter = _CpuMeter(server)
    result = await throughput(
        sockets, make, window=WINDOW, duration_s=THROUGHPUT_S, limit_per_socket=limit
    )
    return (result, *meter.shares())


async def measure_throughput(
    gateway: ServerProcess, echo: ServerProcess, token: str
) -> list[Figure]:
    """Pipelined `health` and `last-heartbeat` over 1 and 64 sockets vs echo round trips."""
    client_sessions = sessions(4)
    gw_sockets: list[ClientWebSocketResponse] = []
    ec_sockets: list[ClientWebSocketResponse] = []
    figures: list[Figure] = []
    try:
        async with asyncio.timeout(30):
            gw_sockets, failed = await open_many(
                GatewayOpener(gateway.ws_url, token), client_sessions, WIDE
            )
            ec_sockets, failed_echo = await open_many(
                echo_opener(echo.ws_url), client_sessions, WIDE
            )
        if failed or failed_echo:
            raise RuntimeError(f"could not open sockets: {(failed + failed_echo)[0]!r}")
        for method in ("health", "last-heartbeat"):
            make = frame_maker(method, {})
            reply = await roundtrip(gw_sockets[0], "0", make(0))
            baseline = echo_maker("echo", request_bytes=len(make(0)), reply_bytes=len(reply))
            for width in (1, WIDE):
                gw, gw_cpu, gw_client = await _drive(gateway, gw_sockets[:width], make)
                ec, ec_cpu, ec_client = await _drive(echo, ec_sockets[:width], baseline)
                name = method.replace("-", "_")
                figures.append(
                    Figure(
                        f"{name}_rps_{width}conn",
                        gw.per_second,
                        "req/s",
                        ec.per_second,
                        Target(">=", 0.5, Measure.RATIO) if method == "last-heartbeat" else None,
                        f"{WINDOW} in flight/conn, reply {len(reply)} B, errors {gw.errors}; "
                        f"cpu server/client: gateway {gw_cpu:.0%}/{gw_client:.0%}, "
                        f"echo {ec_cpu:.0%}/{ec_client:.0%}",
                    )
                )
    finally:
        async with asyncio.timeout(30):
            await asyncio.gather(
                *(ws.close() for ws in gw_sockets + ec_sockets), return_exceptions=True
            )
            await asyncio.gather(*(s.close() for s in client_sessions), return_exceptions=True)
    return figures


async def _join(server: ServerProcess, open_ws: Opener) -> tuple[float, int]:
    """Open `PRESENCE_JOINS` sockets; return (seconds, RSS growth), NaN seconds on timeout."""
    rss_before = server.rss_bytes()
    pool = IdlePool(open_ws, PRESENCE_JOINS)
    started = time.monotonic()
    try:
        await pool.open(budget_s=PRESENCE_JOIN_BUDGET_S)
        seconds = time.monotonic() - started
    except TimeoutError:
        seconds = float("nan")
    try:
        return seconds, server.rss_bytes() - rss_before
    finally:
        await pool.close()
        await asyncio.sleep(SETTLE_S)


async def measure_presence_join(
    gateway: ServerProcess, echo: ServerProcess, token: str
) -> list[Figure]:
    """Open sockets whose clients appear in presence (mode `test`): each join is announced.

    The whole presence list goes to every operator (spec §8.8), coalesced to at most one
    announcement per interval. The quiet (mode `cli`) time on the same gateway is in the
    note; the baseline is the echo server opening as many. The issue's target: within 3x.
    """
    quiet_s, _ = await _join(gateway, GatewayOpener(gateway.ws_url, token, mode="cli"))
    visible_s, grown = await _join(gateway, GatewayOpener(gateway.ws_url, token, mode="test"))
    echo_s, _ = await _join(echo, echo_opener(echo.ws_url))
    timed_out = f"timed out after {PRESENCE_JOIN_BUDGET_S:g} s; " if visible_s != visible_s else ""
    return [
        Figure(
            f"presence_join_{PRESENCE_JOINS}",
            visible_s * 1000,
            "ms",
            echo_s * 1000,
            Target("<=", 3, Measure.RATIO),
            note=f"{timed_out}open {PRESENCE_JOINS} mode=test sockets, 16 at a time; "
            f"same with mode=cli: {quiet_s * 1000:.0f} ms; gateway RSS +{grown / _MIB:.1f} MiB",
        )
    ]
