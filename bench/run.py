"""`python -m bench.run`: measure the gateway against the echo ceiling, print and save it.

The gateway and the echo server each run as their own subprocess; this process is the
load generator. Every server is stopped on the way out, also on error or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import resource
import secrets
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import aiohttp
import uvloop

from .canvas import RELOADS, measure_canvas
from .channels import BURST, ROUND_TRIPS, SENDERS, measure_channels
from .chat import measure_chat
from .cron import FIRING_JOBS, LOADED_JOBS, measure_cron
from .http_door import HTTP_CONNECTIONS, SLOW_CLIENTS, measure_http_door
from .hub import DAEMONS, measure_hub
from .hub_cluster import INSTANCES, measure_hub_cluster
from .ipc import COMMANDS, MANY_PLUGINS, ROUNDTRIPS, measure_ipc
from .irc import IRC_ROUND_TRIPS, measure_irc
from .link import IN_FLIGHT, LATENCY_COMMANDS, THROUGHPUT_COMMANDS, measure_link
from .matrix import MATRIX_ROUND_TRIPS, measure_matrix
from .nodes import IDLE_NODES, NODES, OPERATORS, measure_nodes
from .openai_http import CLIENTS, COMPLETIONS, measure_openai_http
from .phases import (
    IDLE_CONNECTIONS,
    WIDE,
    measure_handshakes,
    measure_idle_and_fanout,
    measure_presence_join,
    measure_startup,
    measure_throughput,
)
from .presence import (
    MARKS,
    SOAK_CLIENTS,
    SOAK_DEFAULT_S,
    STORM_CLIENTS,
    STORM_ROUNDS,
    measure_join_leave,
    measure_soak,
    measure_storm,
)
from .procs import REPO_ROOT, Servers
from .report import Figure, render_table, write_results
from .webchat import WEBCHAT_SENDS, measure_webchat

__all__ = ["main"]

RESULTS_PATH: Final = Path(__file__).resolve().parent / "results.json"
#: For the default run (a soak of `SOAK_DEFAULT_S`); a longer soak adds its extra time.
#: A guard against a hung phase: a run takes about 3 minutes, 6 on a busy machine.
TOTAL_BUDGET_S: Final = 600.0 + 300.0  # + the hub cluster phase
#: Daemons of the hub cluster phase in `bench.run`; `python -m bench.hub_cluster --daemons
#: 10000 --chaos` runs the issue's full size and the chaos run alone.
HUB_CLUSTER_RUN_DAEMONS: Final = 3000
# Ticks would interleave with the measured frames; push them out of the run.
TICK_INTERVAL_MS: Final = 600_000


def _raise_nofile_limit(needed: int) -> None:
    """Raise the soft open-files limit towards `needed` (servers inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


_STARTED: Final = time.monotonic()


def _progress(message: str) -> None:
    """Print one progress line to stderr, with the seconds since the run began."""
    print(f"[bench {time.monotonic() - _STARTED:4.0f} s] {message}", file=sys.stderr, flush=True)


def _source_digest() -> str:
    """Return a digest of the gateway's source files, to tell runs of different code apart."""
    digest = hashlib.sha256()
    source = REPO_ROOT / "src"
    for path in sorted(source.rglob("*.py")):
        digest.update(path.relative_to(source).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


async def _measure(workdir: Path, soak_s: float) -> tuple[list[Figure], list[str]]:
    """Run every phase against fresh servers; return the figures and server-log problems."""
    token = secrets.token_urlsafe(24)
    figures: list[Figure] = []
    with Servers(workdir, token, TICK_INTERVAL_MS) as servers:
        async with aiohttp.ClientSession() as http:
            _progress("start-up: 3 fresh starts of the gateway and the echo server")
            started, gateway, echo = await measure_startup(servers, http)
        figures += started
        _progress(f"idle RSS, {IDLE_CONNECTIONS} idle connections, fan-out")
        figures += await measure_idle_and_fanout(gateway, echo, token)
        _progress("handshake latency")
        figures += await measure_handshakes(gateway, echo, token)
        _progress(f"request throughput over 1 and {WIDE} connections")
        figures += await measure_throughput(gateway, echo, token)
        _progress(
            f"HTTP door: GETs over {HTTP_CONNECTIONS} keep-alive connections, then with "
            f"{SLOW_CLIENTS} slow clients held"
        )
        figures += await measure_http_door(gateway, echo)
        _progress("presence-visible joins")
        figures += await measure_presence_join(gateway, echo, token)
        _progress(f"presence at scale: rounds of {'/'.join(map(str, MARKS))} joins and leaves")
        figures += await measure_join_leave(gateway, echo, token)
        _progress("chat through the echo agent: latency and one run's fan-out")
        async with aiohttp.ClientSession() as http:
            figures += await measure_chat(servers, http, token)
            _progress(f"webchat channel adapter: {WEBCHAT_SENDS} sends against chat.inject")
            figures += await measure_webchat(servers, http, token)
            _progress(
                f"OpenAI-compatible streaming vs the WS API: first chunk, {COMPLETIONS} "
                f"completions by {CLIENTS} clients"
            )
            figures += await measure_openai_http(servers, http, token)
            _progress(
                f"cron: {LOADED_JOBS} jobs loaded (start-up, memory, idle timer and CPU), "
                f"{FIRING_JOBS} due at one second"
            )
            figures += await measure_cron(servers, http, token)
        _progress(f"canvas host: idle cost on against off, {RELOADS} live reloads, static GETs")
        figures += await measure_canvas(servers, token)
        _progress(
            f"nodes: node.invoke round trips, {NODES} nodes and {OPERATORS} operators, "
            f"RSS of {IDLE_NODES} idle nodes"
        )
        async with aiohttp.ClientSession() as http:
            figures += await measure_nodes(servers, http, token)
        _progress(
            f"telegram channel: {ROUND_TRIPS} echo round trips, {BURST} messages from "
            f"{SENDERS} senders at once, on the Bot API stand-in"
        )
        async with aiohttp.ClientSession() as http:
            figures += await measure_channels(servers, http)
        _progress(f"irc channel: {IRC_ROUND_TRIPS} echo round trips through a real ngircd")
        async with aiohttp.ClientSession() as http:
            figures += await measure_irc(servers, http)
        _progress(f"matrix channel: {MATRIX_ROUND_TRIPS} echo round trips through Synapse")
        async with aiohttp.ClientSession() as http:
            figures += await measure_matrix(servers, http, workdir)
        async with aiohttp.ClientSession() as http:
            servers.stop_all()
            _progress(
                f"memory: {STORM_ROUNDS} rounds of {STORM_CLIENTS} joins then all leave, "
                "on a fresh gateway and echo server"
            )
            figures += await measure_storm(servers, http, token)
            _progress(f"memory: a {soak_s:.0f} s soak of {SOAK_CLIENTS} clients")
            figures += await measure_soak(servers, http, token, soak_s)
        servers.stop_all()
        _progress(f"hub: {DAEMONS} simulated daemons held, commands/s through the hub")
        figures += await measure_hub(workdir)
        _progress(
            f"hub cluster: {INSTANCES} instances on PostgreSQL + NATS, {HUB_CLUSTER_RUN_DAEMONS} "
            "daemons, a restart storm, commands/s against one SQLite hub"
        )
        figures += await measure_hub_cluster(workdir / "hub-cluster", HUB_CLUSTER_RUN_DAEMONS)
        _progress(
            f"hub -> daemon -> plugin: {THROUGHPUT_COMMANDS} commands {IN_FLIGHT} in flight, "
            f"{LATENCY_COMMANDS} one at a time, against the real daemon and a simulated one"
        )
        figures += await measure_link(workdir)
        _progress(
            f"plugin IPC: {ROUNDTRIPS} ping round trips, {COMMANDS} commands to 1 and "
            f"{MANY_PLUGINS} plugins, a full queue drained"
        )
        figures += await measure_ipc(workdir)
        problems = servers.log_problems()
    return figures, problems


async def _main_task(workdir: Path, soak_s: float) -> tuple[list[Figure], list[str]]:
    """Run `_measure` within the time budget, cancelling it cleanly on SIGTERM or SIGINT."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        async with asyncio.timeout(_budget_s(soak_s)):
            return await _measure(workdir, soak_s)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _budget_s(soak_s: float) -> float:
    """Return the time the whole run may take with a soak of `soak_s`."""
    return TOTAL_BUDGET_S + max(0.0, soak_s - SOAK_DEFAULT_S)


def _run_loop(workdir: Path, soak_s: float) -> tuple[list[Figure], list[str]]:
    """Run the measurements on uvloop; exit non-zero with one line on interrupt or overrun."""
    try:
        return uvloop.run(_main_task(workdir, soak_s))
    except asyncio.CancelledError:
        _progress("interrupted; servers stopped")
        raise SystemExit(130) from None
    except TimeoutError:
        _progress(f"gave up after {_budget_s(soak_s):g} s; servers stopped")
        raise SystemExit(1) from None


def main() -> None:
    """Run the benchmark suite, print the table and write `bench/results.json`."""
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument(
        "--keep-logs", type=Path, metavar="DIR", help="keep server homes and logs in DIR"
    )
    parser.add_argument(
        "--soak-minutes",
        type=float,
        metavar="M",
        help=f"soak for M minutes (default {SOAK_DEFAULT_S / 60:g}; the issue's soak is 10)",
    )
    args = parser.parse_args()
    soak_s = SOAK_DEFAULT_S if args.soak_minutes is None else args.soak_minutes * 60
    if soak_s < 30:
        parser.error("--soak-minutes must be at least 0.5")
    _raise_nofile_limit(4 * IDLE_CONNECTIONS + 1024)
    began = time.monotonic()
    if args.keep_logs is not None:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="clawgate-bench-", dir=args.keep_logs))
        figures, problems = _run_loop(workdir, soak_s)
        _progress(f"server logs kept in {workdir}")
    else:
        with tempfile.TemporaryDirectory(prefix="clawgate-bench-") as tmp:
            figures, problems = _run_loop(Path(tmp), soak_s)
    elapsed = time.monotonic() - began
    print(render_table(figures))
    print()
    for figure in figures:
        if figure.note:
            print(f"{figure.name}: {figure.note}")
    for line in problems:
        print(f"server log: {line}")
    extra = {
        "duration_s": round(elapsed, 1),
        "source": {"src_sha256": _source_digest()},
        "server_log_problems": problems,
    }
    write_results(RESULTS_PATH, figures, extra)
    print(f"\nwrote {RESULTS_PATH} in {elapsed:.0f} s")


if __name__ == "__main__":
    main()
