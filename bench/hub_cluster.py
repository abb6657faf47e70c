"""The hub scaled out: 3 instances on PostgreSQL + NATS against one SQLite hub (issue 20).

Figures, all in one run on this machine (2 cores shared by the hubs, PostgreSQL, nats-server
and this load generator):
- commands/s end to end (POST ?wait -> COMMAND -> COMMAND_ACK -> 200) through the cluster,
  posts spread round robin over the instances (so 2 of 3 cross the bus), against a single
  SQLite hub measured in the same run;
- daemons held across the 3 instances and the memory each costs per instance
  ((RSS held - RSS idle) / daemons held, per instance);
- the registration storm after every instance restarts: from the restart until every daemon
  is registered again;
- with ``--chaos``, the chaos run at the issue's size (300 daemons, 3,000 commands).

Run alone: ``python -m bench.hub_cluster [--daemons N] [--chaos]``. Daemons connect to the
instances directly, round robin, as an L4 balancer would spread them (a Python relay in
between would cost more CPU than the hubs).

The commands/s notes give the CPU each process spent per command (hub instances, PostgreSQL
with its backends, nats-server, this load generator), from ``/proc``. To see where a cluster
command's time goes, ``CLAWGATE_BENCH_PROFILE=out.prof python -m bench.hub_cluster`` runs the
first instance under ``cProfile`` and stops after the commands/s figures (read it with
``python -m pstats out.prof``); the hub itself has no profiling switch.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import tempfile
import time
from pathlib import Path
from typing import Final

import aiohttp
import psutil
from tests.hub_cluster import HubProcess, run_chaos
from tests.servers import NatsServer, PostgresServer

from .hub import COMMAND_CONCURRENCY, CONNECT_CONCURRENCY, _Daemon, _raise_nofile
from .procs import hub_process
from .report import Figure, Measure, Target

__all__ = ["CLUSTER_DAEMONS", "measure_hub_cluster"]

CLUSTER_DAEMONS: Final = 10_000
INSTANCES: Final = 3
RATE_COMMANDS: Final = 1500
RATE_DAEMONS: Final = 24
_SETTLE_S: Final = 2.0
_CONNECT_ATTEMPTS: Final = 20
#: Set to a file name: instance 1 runs under cProfile, and the run ends after commands/s.
PROFILE_ENV: Final = "CLAWGATE_BENCH_PROFILE"


def _cpu_s(pid: int, *, tree: bool = False) -> float:
    """Return the CPU seconds (user + system) of ``pid``, with its children when ``tree``."""
    process = psutil.Process(pid)
    processes = [process, *(process.children(recursive=True) if tree else [])]
    total = 0.0
    for each in processes:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


class _CpuMeter:
    """CPU seconds spent by named processes between ``start`` and ``per_command``."""

    def __init__(self, pids: dict[str, tuple[int, bool]]) -> None:
        self._pids = pids
        self._began: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {name: _cpu_s(pid, tree=tree) for name, (pid, tree) in self._pids.items()}
        usage = os.times()
        now["load generator"] = usage.user + usage.system
        return now

    def start(self) -> None:
        self._began = self._now()

    def per_command(self, commands: int, *, what: str = "command") -> str:
        """Return "name X ms, ..." of CPU per command (or ``what``) since ``start``."""
        now = self._now()
        spent = {name: (now[name] - self._began[name]) * 1000 / commands for name in now}
        total = sum(spent.values())
        return f"CPU per {what}: " + ", ".join(
            [f"{name} {ms:.2f} ms" for name, ms in spent.items()] + [f"total {total:.2f} ms"]
        )


def _cluster_meter(hubs: list[HubProcess], pg: PostgresServer, nats: NatsServer) -> _CpuMeter:
    """Return a meter of the instances, PostgreSQL (with its backends) and nats-server."""
    pids = {f"hub {i + 1}": (h.proc.pid, False) for i, h in enumerate(hubs) if h.proc is not None}
    if pg.proc is not None and nats.proc is not None:
        pids |= {"postgres": (pg.proc.pid, True), "nats": (nats.proc.pid, False)}
    return _CpuMeter(pids)


def _absolute(path: str) -> str:
    """Return ``path`` made absolute (the instance runs in another directory)."""
    return str(Path(path).resolve())


def _make_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def _progress(message: str) -> None:
    print(f"[hub_cluster] {message}", flush=True)


async def _rate(
    http: aiohttp.ClientSession, bases: list[str], token: str, targets: list[_Daemon]
) -> float:
    """Return commands/s ended `done`, posts spread round robin over ``bases``."""
    done = 0
    gate = asyncio.Semaphore(COMMAND_CONCURRENCY)
    body = {"name": "bench.noop", "target": {"plugin": "bench"}, "params": {}}
    headers = {"Authorization": f"Bearer {token}"}

    async def one(index: int) -> None:
        nonlocal done
        base = bases[index % len(bases)]
        daemon_id = targets[(index // len(bases) + index) % len(targets)].daemon_id
        async with (
            gate,
            http.post(
                f"{base}/v1/daemons/{daemon_id}/commands?wait=30", json=body, headers=headers
            ) as response,
        ):
            record = await response.json()
            if response.status == 200 and record["state"] == "done":
                done += 1

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(RATE_COMMANDS)))
    return done / (time.perf_counter() - began)


async def _new_key(http: aiohttp.ClientSession, base: str, token: str) -> str:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(f"{base}/v1/keys", json={}, headers=headers) as response:
        return str((await response.json())["key"])


async def _connected(http: aiohttp.ClientSession, base: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with http.get(f"{base}/v1/daemons", headers=headers) as response:
        listing = await response.json()
    return sum(1 for d in listing["daemons"] if d["connected"])


async def _connect_all(
    session: aiohttp.ClientSession, url: str, key: str, count: int
) -> list[_Daemon]:
    """Connect ``count`` daemons, 100 at a time; a refused attempt is retried as a daemon would."""
    daemons: list[_Daemon] = []
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    headers = {"Authorization": f"Bearer {key}"}

    async def one() -> None:
        for attempt in range(_CONNECT_ATTEMPTS):
            async with gate:
                try:
                    ws = await session.ws_connect(
                        url, headers=headers, autoping=True, heartbeat=None
                    )
                    daemon = _Daemon(ws)
                    await daemon.register()
                except (aiohttp.ClientError, RuntimeError, TimeoutError, OSError):
                    if attempt == _CONNECT_ATTEMPTS - 1:
                        raise
                else:
                    daemons.append(daemon)
                    return
            await asyncio.sleep(0.5)

    await asyncio.gather(*(one() for _ in range(count)))
    return daemons


async def _spread(
    http: aiohttp.ClientSession, hubs: list[HubProcess], key: str, count: int
) -> list[_Daemon]:
    shares = [count // len(hubs) + (1 if i < count % len(hubs) else 0) for i in range(len(hubs))]
    parts = await asyncio.gather(
        *(
            _connect_all(http, f"ws://127.0.0.1:{hub.port}/v1/daemon", key, share)
            for hub, share in zip(hubs, shares, strict=True)
        )
    )
    return [d for part in parts for d in part]


async def _single_rate(workdir: Path) -> tuple[float, str]:
    """Return the single SQLite hub's commands/s and the CPU it took per command."""
    token = secrets.token_urlsafe(24)
    hub = hub_process(workdir / "single-home", workdir / "single.log", token)
    base = f"http://127.0.0.1:{hub.port}"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            await hub.wait_ready(http)
            key = await _new_key(http, base, token)
            daemons = await _connect_all(
                http, f"ws://127.0.0.1:{hub.port}/v1/daemon", key, RATE_DAEMONS
            )
            meter = _CpuMeter({"hub": (hub.pid, False)})
            meter.start()
            rate = await _rate(http, [base], token, daemons)
            cpu = meter.per_command(RATE_COMMANDS)
            for daemon in daemons:
                await daemon.ws.close()
    finally:
        hub.stop()
    return rate, cpu


async def measure_hub_cluster(
    workdir: Path, daemons: int = CLUSTER_DAEMONS, *, chaos: bool = False, rate_only: bool = False
) -> list[Figure]:
    """Run the scale-out figures; see the module docstring (``rate_only``: commands/s only)."""
    _raise_nofile(2 * daemons + 4096)
    _make_dir(workdir)
    _progress("single SQLite hub: commands/s")
    single, single_cpu = await _single_rate(workdir)
    _progress(f"single SQLite hub: {single:.0f} commands/s; {single_cpu}")
    profile = os.environ.get(PROFILE_ENV)
    pg = PostgresServer(durable=True)
    nats = NatsServer()
    pg.start()
    nats.start()
    figures: list[Figure] = []
    hubs: list[HubProcess] = []
    try:
        token = secrets.token_urlsafe(24)
        key = secrets.token_bytes(32)
        database = pg.create_database("bench")
        hubs = [
            HubProcess(
                workdir / f"cluster{i}",
                database_url=database,
                bus_url=nats.url,
                admin_token=token,
                secrets_key=key,
                sweep_interval_s=5.0,
                heartbeat_ms=20_000,
            )
            for i in range(INSTANCES)
        ]
        if profile:
            first = hubs[0].args
            first[1:1] = ["-m", "cProfile", "-o", _absolute(profile)]
        await asyncio.gather(*(h.start() for h in hubs))
        bases = [h.url for h in hubs]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
            daemon_key = await _new_key(http, bases[0], token)
            _progress(f"cluster of {INSTANCES}: commands/s")
            few = await _spread(http, hubs, daemon_key, RATE_DAEMONS)
            meter = _cluster_meter(hubs, pg, nats)
            meter.start()
            cluster = await _rate(http, bases, token, few)
            cluster_cpu = meter.per_command(RATE_COMMANDS)
            _progress(f"cluster: {cluster:.0f} commands/s; {cluster_cpu}")
            for daemon in few:
                await daemon.ws.close()
            if profile:
                hubs[0].stop()
                _progress(f"profile of instance 1 written to {profile}")
            if profile or rate_only:
                return [
                    _rate_figure(cluster, single, f"Cluster {cluster_cpu}; single hub {single_cpu}")
                ]
            await asyncio.sleep(_SETTLE_S)
            idle = [h.rss_kib() for h in hubs]
            _progress(f"cluster of {INSTANCES}: connecting {daemons} daemons")
            began = time.perf_counter()
            held_daemons = await _spread(http, hubs, daemon_key, daemons)
            connect_s = time.perf_counter() - began
            await asyncio.sleep(_SETTLE_S)
            held = await _connected(http, bases[0], token)
            rss = [h.rss_kib() for h in hubs]
            per_daemon = max(
                (r - i) / (daemons / INSTANCES) for r, i in zip(rss, idle, strict=True)
            )
            _progress(f"held {held}; restarting every instance for the registration storm")
            for daemon in held_daemons:
                if daemon.task is not None:
                    daemon.task.cancel()
            for hub in hubs:
                hub.stop()
            for daemon in held_daemons:
                await daemon.ws.close()
            restart = time.perf_counter()
            await asyncio.gather(*(h.start() for h in hubs))
            storm_meter = _cluster_meter(hubs, pg, nats)
            storm_meter.start()
            again = await _spread(http, hubs, daemon_key, daemons)
            while await _connected(http, bases[0], token) < daemons:
                await asyncio.sleep(0.5)
            storm_s = time.perf_counter() - restart
            storm_cpu = storm_meter.per_command(daemons, what="registration")
            _progress(f"storm: {storm_s:.1f} s; {storm_cpu}")
            for daemon in again:
                await daemon.ws.close()
        figures += [
            Figure(
                "hub_cluster_daemons_held",
                held,
                "conns",
                None,
                Target(">=", daemons),
                f"{INSTANCES} instances on PostgreSQL + NATS, ~{daemons // INSTANCES} each "
                f"({connect_s:.1f} s to connect all)",
            ),
            Figure(
                "hub_cluster_memory_per_daemon",
                per_daemon,
                "KiB",
                None,
                Target("<", 30),
                "per instance, worst of the 3: (RSS held - RSS idle) / daemons it holds; RSS "
                + ", ".join(f"{r / 1024:.0f} MiB" for r in rss),
            ),
            Figure(
                "hub_cluster_storm_s",
                storm_s,
                "s",
                None,
                Target("<", 60),
                f"all {INSTANCES} instances restarted, then all {daemons} daemons register at "
                "once (100 connects in flight per instance); until the API lists all connected. "
                f"{storm_cpu} (from the instances' start)",
            ),
            _rate_figure(cluster, single, f"Cluster {cluster_cpu}; single hub {single_cpu}"),
        ]
        if chaos:
            for hub in hubs:
                hub.stop()
            _progress("chaos: 300 daemons, 3,000 commands, four faults")
            lines = await run_chaos(pg, nats, workdir / "chaos", log=_progress)
            for line in lines[1:]:
                figures.append(
                    Figure(
                        f"hub_chaos_{line.fault.replace(' ', '_').replace('-', '')}",
                        line.recover_s,
                        "s",
                        None,
                        None,
                        line.render(),
                    )
                )
    finally:
        for hub in hubs:
            hub.stop()
        pg.cleanup()
        nats.cleanup()
    return figures


def _rate_figure(cluster: float, single: float, cpu: str) -> Figure:
    return Figure(
        "hub_cluster_commands_per_s",
        cluster,
        "cmd/s",
        single,
        Target(">=", 2.0, Measure.RATIO),
        f"{INSTANCES} instances, posts round robin (2 of 3 cross NATS), {RATE_COMMANDS} "
        f"commands {COMMAND_CONCURRENCY} in flight; baseline: one SQLite hub, same run. {cpu}",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--daemons", type=int, default=CLUSTER_DAEMONS)
    parser.add_argument("--chaos", action="store_true")
    parser.add_argument("--rate-only", action="store_true", help="commands/s figures only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clawgate-hub-cluster-") as tmp:
        figures = asyncio.run(
            measure_hub_cluster(Path(tmp), args.daemons, chaos=args.chaos, rate_only=args.rate_only)
        )
    for figure in figures:
        ratio = f" ({figure.ratio:.2f}x baseline {figure.baseline:.1f})" if figure.ratio else ""
        verdict = (
            ""
            if figure.target is None
            else (" [met]" if figure.target.met(figure) else " [NOT met]")
        )
        print(f"{figure.name}: {figure.value:.1f} {figure.unit}{ratio}{verdict} — {figure.note}")


if __name__ == "__main__":
    main()
