"""Commands end to end: operator -> hub -> daemon -> plugin -> ack, all real processes (issue 5).

Who runs where: `clawgate hub run`, `clawgate gateway run` (with `[cloud] url` pointing at the
hub and the api key in `CLAWGATE_API_KEY`) and one SDK plugin (`bench/ipc_plugin.py`, answers
`command.execute` at once) are subprocesses; this process is the operator. Each command is
`POST /v1/daemons/{id}/commands?wait=` (200 once terminal; on a 202 it follows with
`GET /v1/commands/{id}?wait=`), so a command counts when the hub has committed its terminal
COMMAND_ACK and said so.

Baseline: the same hub and the same operator client against the simulated daemon of
`tests/fakes/hub_daemon.py` in this process, which acks `accepted` then `done` at once like
the real daemon's two acks, with no state.db, no queue and no plugin behind it. The ratio is
what the daemon and the plugin cost on top of the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from tests.fakes.hub_daemon import SimDaemon

from .procs import ServerProcess, Servers
from .report import Figure, median, percentile

__all__ = ["IN_FLIGHT", "LATENCY_COMMANDS", "THROUGHPUT_COMMANDS", "measure_link"]

THROUGHPUT_COMMANDS: Final = 2_000
LATENCY_COMMANDS: Final = 300
WARMUP_COMMANDS: Final = 100
#: Commands posted and not yet terminal. Spread over `TARGETS` capabilities so no target's
#: queue in the daemon gets near its cap of 100 (spec §4.3): nothing is rejected as full.
IN_FLIGHT: Final = 128
TARGETS: Final = 4
WAIT_S: Final = 10.0
READY_TIMEOUT_S: Final = 15.0
STEP_TIMEOUT_S: Final = 60.0
_POLL_S: Final = 0.02
# Ticks would interleave with the measured frames; push them out of the run.
_TICK_INTERVAL_MS: Final = 600_000


@dataclass(slots=True)
class _Run:
    """What one batch of commands did: wall time, per-command latency, final states."""

    elapsed_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    states: Counter[str] = field(default_factory=Counter)

    @property
    def done(self) -> int:
        """Commands that ended `done`."""
        return self.states["done"]

    @property
    def rate(self) -> float:
        """Commands done per second of wall time."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def describe(self) -> str:
        """Return the final states, e.g. `done 2000`."""
        return ", ".join(f"{state} {count}" for state, count in sorted(self.states.items()))


class _Operator:
    """The hub's operator API over one keep-alive connection pool."""

    def __init__(self, session: aiohttp.ClientSession, hub: ServerProcess, token: str) -> None:
        self._session = session
        self._base = f"http://127.0.0.1:{hub.port}"
        self._headers = {"Authorization": f"Bearer {token}"}

    @property
    def link_url(self) -> str:
        """The URL daemons put in `[cloud] url`."""
        return self._base.replace("http://", "ws://") + "/v1/daemon"

    async def create_key(self) -> str:
        """Issue a daemon key."""
        async with self._session.post(
            f"{self._base}/v1/keys", json={"label": "bench"}, headers=self._headers
        ) as response:
            response.raise_for_status()
            return str((await response.json())["key"])

    async def connected_daemon(self, process: ServerProcess) -> str:
        """Wait until exactly one daemon is connected; return its id.

        Raises:
            RuntimeError: the daemon exited or did not connect in time.
        """
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not process.running():
                raise RuntimeError(f"{process.name} exited early:\n{process.log_tail()}")
            async with self._session.get(f"{self._base}/v1/daemons", headers=self._headers) as r:
                listing = await r.json()
            online = [d["daemonId"] for d in listing["daemons"] if d["connected"]]
            if online:
                return str(online[0])
            await asyncio.sleep(_POLL_S)
        raise RuntimeError(f"the daemon did not connect to the hub:\n{process.log_tail()}")

    async def command(self, daemon_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Post one command and wait until the hub holds its terminal ack; return the record."""
        url = f"{self._base}/v1/daemons/{daemon_id}/commands?wait={WAIT_S:g}"
        async with self._session.post(url, json=body, headers=self._headers) as response:
            if response.status not in (200, 202):
                raise RuntimeError(f"POST command: HTTP {response.status} {await response.text()}")
            record: dict[str, Any] = await response.json()
        while not record["terminal"]:
            url = f"{self._base}/v1/commands/{record['commandId']}?wait={WAIT_S:g}"
            async with self._session.get(url, headers=self._headers) as response:
                response.raise_for_status()
                record = await response.json()
        return record


def _body(index: int) -> dict[str, Any]:
    """Return command `index`, round robin over the plugin's capabilities."""
    return {"name": "bench.noop", "target": {"capability": _capability(index)}, "params": {}}


def _capability(index: int) -> str:
    return f"bench.t{index % TARGETS}"


async def _run(operator: _Operator, daemon_id: str, count: int, in_flight: int) -> _Run:
    """Send `count` commands with `in_flight` workers, each one command at a time."""
    run = _Run()
    issued = 0

    async def worker() -> None:
        nonlocal issued
        clock = time.perf_counter
        while issued < count:
            body = _body(issued)
            issued += 1
            started = clock()
            record = await operator.command(daemon_id, body)
            run.latencies.append(clock() - started)
            run.states[record["state"]] += 1

    began = time.perf_counter()
    async with _step(f"{count} commands, {in_flight} in flight"):
        await asyncio.gather(*(worker() for _ in range(in_flight)))
    run.elapsed_s = time.perf_counter() - began
    return run


@contextlib.asynccontextmanager
async def _step(what: str) -> AsyncIterator[None]:
    """Bound a step; on overrun raise RuntimeError (not the whole run's TimeoutError)."""
    try:
        async with asyncio.timeout(STEP_TIMEOUT_S):
            yield
    except TimeoutError:
        raise RuntimeError(f"link bench stuck: {what} after {STEP_TIMEOUT_S:g} s") from None


@dataclass(slots=True)
class _Measured:
    """One target's throughput and latency runs, and CPU shares during the throughput run."""

    throughput: _Run
    latency: _Run
    cpu: str


async def _measure(
    operator: _Operator, daemon_id: str, processes: list[ServerProcess]
) -> _Measured:
    """Warm up, then time the throughput run and the sequential latency run."""
    warm = await _run(operator, daemon_id, WARMUP_COMMANDS, 8)
    if warm.done != WARMUP_COMMANDS:
        raise RuntimeError(f"warm-up commands did not all finish: {warm.describe()}")
    before = [p.cpu_seconds() for p in processes]
    own_before = time.process_time()
    throughput = await _run(operator, daemon_id, THROUGHPUT_COMMANDS, IN_FLIGHT)
    shares = [
        (p.cpu_seconds() - b) / throughput.elapsed_s for p, b in zip(processes, before, strict=True)
    ]
    shares.append((time.process_time() - own_before) / throughput.elapsed_s)
    latency = await _run(operator, daemon_id, LATENCY_COMMANDS, 1)
    return _Measured(throughput, latency, "/".join(f"{s:.0%}" for s in shares))


async def _wait_done(operator: _Operator, daemon_id: str, process: ServerProcess) -> None:
    """Post a command until one ends `done`: the plugin is registered with the daemon."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not process.running():
            raise RuntimeError(f"{process.name} exited early:\n{process.log_tail()}")
        record = await operator.command(daemon_id, _body(0))
        if record["state"] == "done":
            return
        await asyncio.sleep(_POLL_S)
    raise RuntimeError(f"no command finished through the plugin:\n{process.log_tail()}")


async def measure_link(workdir: Path) -> list[Figure]:
    """Measure commands/s and latency through hub, daemon and plugin; baseline: simulated."""
    root = workdir / "link"
    root.mkdir()
    token = secrets.token_urlsafe(24)
    connector = aiohttp.TCPConnector(limit=0)
    with Servers(root, token, _TICK_INTERVAL_MS) as servers:
        async with aiohttp.ClientSession(connector=connector) as session:
            hub = servers.hub(token)
            await hub.wait_ready(session)
            operator = _Operator(session, hub, token)
            base = await _baseline(operator, hub)
            cloud = f'[cloud]\nurl = "{operator.link_url}"\n'
            api_key = {"CLAWGATE_API_KEY": await operator.create_key()}
            daemon = servers.gateway(cloud, api_key)
            await daemon.wait_ready(session)
            assert daemon.home is not None
            capabilities = [arg for i in range(TARGETS) for arg in ("--capability", _capability(i))]
            plugin = servers.module(
                "plugin",
                "bench.ipc_plugin",
                ["--socket", str(daemon.home / "gateway.sock"), "--name", "bench", *capabilities],
            )
            daemon_id = await operator.connected_daemon(daemon)
            await _wait_done(operator, daemon_id, plugin)
            link = await _measure(operator, daemon_id, [hub, daemon, plugin])
    return _figures(link, base)


async def _baseline(operator: _Operator, hub: ServerProcess) -> _Measured:
    """Measure the same hub against the simulated daemon, which acks every COMMAND at once."""
    sim = SimDaemon(operator.link_url, await operator.create_key())
    if await sim.connect() is None:
        raise RuntimeError(f"the hub refused the simulated daemon (close {sim.close_code})")
    try:
        return await _measure(operator, sim.daemon_id, [hub])
    finally:
        await sim.close()


def _figures(link: _Measured, base: _Measured) -> list[Figure]:
    """Turn both measurements into figures."""
    tp, lat = link.throughput, link.latency
    setup = (
        "hub, daemon and SDK plugin subprocesses; baseline = same hub and client against the "
        "simulated daemon of tests/fakes/hub_daemon.py (acks accepted + done at once)"
    )
    return [
        Figure(
            "link_commands_per_s",
            tp.rate,
            "cmd/s",
            base.throughput.rate,
            note=(
                f"{THROUGHPUT_COMMANDS} commands, {IN_FLIGHT} in flight over {TARGETS} "
                f"capabilities, POST ?wait= to terminal; {tp.describe()} "
                f"(baseline {base.throughput.describe()}); cpu hub/daemon/plugin/client "
                f"{link.cpu} (baseline cpu hub/client+simulated daemon {base.cpu}); {setup}"
            ),
        ),
        Figure(
            "link_command_median",
            median(lat.latencies) * 1000,
            "ms",
            median(base.latency.latencies) * 1000,
            note=f"n={LATENCY_COMMANDS} sequential commands, POST ?wait= to terminal; "
            f"{lat.describe()}",
        ),
        _p99("link_command_p99", lat, base.latency, f"max {max(lat.latencies) * 1000:.1f} ms"),
        _p99(
            "link_command_p99_loaded",
            tp,
            base.throughput,
            f"per-command p99 during the throughput run ({IN_FLIGHT} in flight)",
        ),
    ]


def _p99(name: str, run: _Run, base: _Run, note: str) -> Figure:
    """Return the p99 latency of `run` against that of `base`, in ms."""
    value, baseline = (percentile(r.latencies, 0.99) * 1000 for r in (run, base))
    return Figure(name, value, "ms", baseline, note=note)
