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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import aiohttp
import uvloop

from .canvas import RELOADS, measure_canvas
from .channels import BURST, ROUND_TRIPS, SENDERS, measure_channels
from .chat import measure_chat
from .cron import FIRING_JOBS, LOADED_JOBS, measure_cron
from .discord import DISCORD_BURST, DISCORD_ROUND_TRIPS, measure_discord
from .http_door import HTTP_CONNECTIONS, SLOW_CLIENTS, measure_http_door
from .hub import DAEMONS, measure_hub
from .hub_cluster import INSTANCES, measure_hub_cluster
from .imessage import IMESSAGE_ROUND_TRIPS, measure_imessage
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
from .signal import SIGNAL_ROUND_TRIPS, measure_signal
from .slack import SLACK_BURST, SLACK_EVENTS_ROUND_TRIPS, SLACK_ROUND_TRIPS, measure_slack
from .webchat import WEBCHAT_SENDS, measure_webchat
from .whatsapp import WHATSAPP_ROUND_TRIPS, measure_whatsapp

__all__ = ["main"]

RESULTS_PATH: Final = Path(__file__).resolve().parent / "results.json"
#: Daemons of the hub cluster phase in `bench.run`: the issue's full size (about 2 minutes of
#: the phase's 360 s on 2 cores); `python -m bench.hub_cluster --chaos` adds the chaos run.
HUB_CLUSTER_RUN_DAEMONS: Final = 10_000
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


@dataclass(frozen=True, slots=True)
class Context:
    """What every phase may use: the server spawner, a scratch directory, the shared token."""

    servers: Servers
    workdir: Path
    token: str
    soak_s: float


@dataclass(frozen=True, slots=True)
class Phase:
    """One bounded part of the run: a hung or slow phase loses its own figures, no others."""

    name: str
    title: str
    budget_s: float
    measure: Callable[[Context], Awaitable[list[Figure]]]


async def _core(ctx: Context) -> list[Figure]:
    """Start-up, idle memory, handshakes, throughput, the HTTP door and presence."""
    token = ctx.token
    async with aiohttp.ClientSession() as http:
        figures, gateway, echo = await measure_startup(ctx.servers, http)
    _progress(f"  idle RSS, {IDLE_CONNECTIONS} idle connections, fan-out")
    figures += await measure_idle_and_fanout(gateway, echo, token)
    _progress("  handshake latency")
    figures += await measure_handshakes(gateway, echo, token)
    _progress(f"  request throughput over 1 and {WIDE} connections")
    figures += await measure_throughput(gateway, echo, token)
    _progress(f"  HTTP door: {HTTP_CONNECTIONS} keep-alive connections, {SLOW_CLIENTS} slow ones")
    figures += await measure_http_door(gateway, echo)
    _progress("  presence-visible joins")
    figures += await measure_presence_join(gateway, echo, token)
    _progress(f"  presence at scale: rounds of {'/'.join(map(str, MARKS))} joins and leaves")
    figures += await measure_join_leave(gateway, echo, token)
    return figures


async def _with_http(
    ctx: Context, measure: Callable[[Servers, aiohttp.ClientSession, str], Awaitable[list[Figure]]]
) -> list[Figure]:
    """Run a phase that takes the servers, an HTTP session and the token."""
    async with aiohttp.ClientSession() as http:
        return await measure(ctx.servers, http, ctx.token)


async def _memory(ctx: Context) -> list[Figure]:
    """The join/leave storm and the soak, each on fresh servers."""
    async with aiohttp.ClientSession() as http:
        figures = await measure_storm(ctx.servers, http, ctx.token)
        _progress(f"  a {ctx.soak_s:.0f} s soak of {SOAK_CLIENTS} clients")
        figures += await measure_soak(ctx.servers, http, ctx.token, ctx.soak_s)
    return figures


async def _channels(ctx: Context) -> list[Figure]:
    async with aiohttp.ClientSession() as http:
        return await measure_channels(ctx.servers, http)


async def _irc(ctx: Context) -> list[Figure]:
    async with aiohttp.ClientSession() as http:
        return await measure_irc(ctx.servers, http)


async def _slack(ctx: Context) -> list[Figure]:
    async with aiohttp.ClientSession() as http:
        return await measure_slack(ctx.servers, http)


async def _discord(ctx: Context) -> list[Figure]:
    async with aiohttp.ClientSession() as http:
        return await measure_discord(ctx.servers, http)


async def _whatsapp(ctx: Context) -> list[Figure]:
    async with aiohttp.ClientSession() as http:
        return await measure_whatsapp(ctx.servers, http)


async def _imessage(ctx: Context) -> list[Figure]:
    async with aiohttp.ClientSession() as http:
        return await measure_imessage(ctx.servers, http)


async def _signal(ctx: Context) -> list[Figure]:
    async with aiohttp.ClientSession() as http:
        return await measure_signal(ctx.servers, http)


async def _matrix(ctx: Context) -> list[Figure]:
    async with aiohttp.ClientSession() as http:
        return await measure_matrix(ctx.servers, http, ctx.workdir)


PHASES: Final = (
    Phase("core", "start-up, idle RSS, handshakes, throughput, HTTP door, presence", 420, _core),
    Phase(
        "chat",
        "chat through the echo agent: latency and one run's fan-out",
        90,
        lambda ctx: _with_http(ctx, measure_chat),
    ),
    Phase(
        "webchat",
        f"webchat channel adapter: {WEBCHAT_SENDS} sends against chat.inject",
        90,
        lambda ctx: _with_http(ctx, measure_webchat),
    ),
    Phase(
        "openai",
        f"OpenAI-compatible streaming vs the WS API, {COMPLETIONS} completions by {CLIENTS}",
        90,
        lambda ctx: _with_http(ctx, measure_openai_http),
    ),
    Phase(
        "cron",
        f"cron: {LOADED_JOBS} jobs loaded, {FIRING_JOBS} due at one second",
        120,
        lambda ctx: _with_http(ctx, measure_cron),
    ),
    Phase(
        "canvas",
        f"canvas host: idle cost on against off, {RELOADS} live reloads",
        90,
        lambda ctx: measure_canvas(ctx.servers, ctx.token),
    ),
    Phase(
        "nodes",
        f"nodes: node.invoke, {NODES} nodes and {OPERATORS} operators, {IDLE_NODES} idle",
        150,
        lambda ctx: _with_http(ctx, measure_nodes),
    ),
    Phase(
        "telegram",
        f"telegram: {ROUND_TRIPS} round trips, {BURST} messages from {SENDERS} senders",
        120,
        _channels,
    ),
    Phase("irc", f"irc: {IRC_ROUND_TRIPS} echo round trips through a real ngircd", 90, _irc),
    Phase("matrix", f"matrix: {MATRIX_ROUND_TRIPS} echo round trips through Synapse", 150, _matrix),
    Phase(
        "slack",
        f"slack: {SLACK_ROUND_TRIPS} Socket Mode round trips, a {SLACK_BURST}-message burst,"
        f" {SLACK_EVENTS_ROUND_TRIPS} Events API round trips",
        120,
        _slack,
    ),
    Phase(
        "discord",
        f"discord: {DISCORD_ROUND_TRIPS} gateway round trips, a {DISCORD_BURST}-message burst",
        120,
        _discord,
    ),
    Phase(
        "whatsapp",
        f"whatsapp: {WHATSAPP_ROUND_TRIPS} echo round trips through the Cloud API stand-in",
        90,
        _whatsapp,
    ),
    Phase(
        "imessage",
        f"imessage: {IMESSAGE_ROUND_TRIPS} BlueBubbles webhook -> REST echo round trips",
        90,
        _imessage,
    ),
    Phase(
        "signal",
        f"signal: {SIGNAL_ROUND_TRIPS} echo round trips through the signal-cli daemon stand-in",
        90,
        _signal,
    ),
    Phase(
        "memory",
        f"memory: {STORM_ROUNDS} rounds of {STORM_CLIENTS} joins then leaves, then the soak",
        180,
        _memory,
    ),
    Phase(
        "hub",
        f"hub: {DAEMONS} simulated daemons held, commands/s",
        150,
        lambda ctx: measure_hub(ctx.workdir),
    ),
    Phase(
        "hub-cluster",
        f"hub cluster: {INSTANCES} instances on PostgreSQL + NATS, "
        f"{HUB_CLUSTER_RUN_DAEMONS} daemons, a restart storm",
        360,
        lambda ctx: measure_hub_cluster(ctx.workdir / "hub-cluster", HUB_CLUSTER_RUN_DAEMONS),
    ),
    Phase(
        "link",
        f"hub -> daemon -> plugin: {THROUGHPUT_COMMANDS} commands {IN_FLIGHT} in flight, "
        f"{LATENCY_COMMANDS} one at a time",
        150,
        lambda ctx: measure_link(ctx.workdir),
    ),
    Phase(
        "ipc",
        f"plugin IPC: {ROUNDTRIPS} pings, {COMMANDS} commands to 1 and {MANY_PLUGINS} plugins",
        150,
        lambda ctx: measure_ipc(ctx.workdir),
    ),
)


@dataclass(slots=True)
class Outcome:
    """What a run measured, which phases did not finish and why, and the servers' log problems."""

    figures: list[Figure] = field(default_factory=list)
    unfinished: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _budget_s(phase: Phase, soak_s: float) -> float:
    """Return the time `phase` may take (the memory phase gets a longer soak's extra time)."""
    extra = max(0.0, soak_s - SOAK_DEFAULT_S) if phase.name == "memory" else 0.0
    return phase.budget_s + extra


async def _measure(workdir: Path, soak_s: float, phases: Sequence[Phase]) -> Outcome:
    """Run `phases` in order, each within its budget and on servers of its own."""
    outcome = Outcome()
    token = secrets.token_urlsafe(24)
    with Servers(workdir, token, TICK_INTERVAL_MS) as servers:
        ctx = Context(servers, workdir, token, soak_s)
        for phase in phases:
            budget = _budget_s(phase, soak_s)
            _progress(f"{phase.name}: {phase.title}")
            try:
                async with asyncio.timeout(budget):
                    outcome.figures += await phase.measure(ctx)
            except TimeoutError:
                outcome.unfinished[phase.name] = f"ran out of its {budget:g} s"
                _progress(f"{phase.name}: gave up after {budget:g} s; its figures are missing")
            except Exception as error:  # one failed phase must not cost the others' figures
                outcome.unfinished[phase.name] = f"failed: {type(error).__name__}: {error}"
                _progress(f"{phase.name}: {outcome.unfinished[phase.name]}")
            finally:
                servers.stop_all()
        outcome.problems = servers.log_problems()
    return outcome


async def _main_task(workdir: Path, soak_s: float, phases: Sequence[Phase]) -> Outcome:
    """Run `_measure`, cancelling it cleanly on SIGTERM or SIGINT."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        return await _measure(workdir, soak_s, phases)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _run_loop(workdir: Path, soak_s: float, phases: Sequence[Phase]) -> Outcome:
    """Run the measurements on uvloop; exit 130 with one line on interrupt."""
    try:
        return uvloop.run(_main_task(workdir, soak_s, phases))
    except asyncio.CancelledError:
        _progress("interrupted; servers stopped")
        raise SystemExit(130) from None


def _select(names: str | None) -> list[Phase]:
    """Return the phases named in a comma-separated list (all of them for None), in run order."""
    if names is None:
        return list(PHASES)
    wanted = {name.strip() for name in names.split(",") if name.strip()}
    unknown = wanted - {phase.name for phase in PHASES}
    if unknown:
        known = ", ".join(phase.name for phase in PHASES)
        raise SystemExit(f"unknown phase(s): {', '.join(sorted(unknown))}; known: {known}")
    return [phase for phase in PHASES if phase.name in wanted]


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
    parser.add_argument(
        "--phases",
        metavar="A,B",
        help="run only these phases (comma-separated; results.json is written only by a full run)",
    )
    args = parser.parse_args()
    phases = _select(args.phases)
    soak_s = SOAK_DEFAULT_S if args.soak_minutes is None else args.soak_minutes * 60
    if soak_s < 30:
        parser.error("--soak-minutes must be at least 0.5")
    _raise_nofile_limit(4 * IDLE_CONNECTIONS + 1024)
    began = time.monotonic()
    if args.keep_logs is not None:
        args.keep_logs.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix="clawgate-bench-", dir=args.keep_logs))
        outcome = _run_loop(workdir, soak_s, phases)
        _progress(f"server logs kept in {workdir}")
    else:
        with tempfile.TemporaryDirectory(prefix="clawgate-bench-") as tmp:
            outcome = _run_loop(Path(tmp), soak_s, phases)
    elapsed = time.monotonic() - began
    figures, problems = outcome.figures, outcome.problems
    print(render_table(figures))
    print()
    for figure in figures:
        if figure.note:
            print(f"{figure.name}: {figure.note}")
    for line in problems:
        print(f"server log: {line}")
    for name, why in outcome.unfinished.items():
        print(f"phase {name} {why.splitlines()[0]}: its figures are missing")
    if args.phases is not None:
        print(f"\n{len(phases)} phase(s) in {elapsed:.0f} s; results.json left as it was")
        return
    extra = {
        "duration_s": round(elapsed, 1),
        "source": {"src_sha256": _source_digest()},
        "server_log_problems": problems,
        "phases_unfinished": outcome.unfinished,
    }
    write_results(RESULTS_PATH, figures, extra)
    print(f"\nwrote {RESULTS_PATH} in {elapsed:.0f} s")
    if outcome.unfinished:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
