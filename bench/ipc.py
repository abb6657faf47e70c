"""Plugin IPC: `ping` round trips and commands/s through queue -> plugin -> ack (issue 4).

Who runs where:

- Round trips: the gateway runs as a subprocess (`clawgate gateway run`, as in the other
  phases) and so does the baseline, `bench/ipc_echo.py`, a bare NDJSON server on a Unix
  socket. The plugin is an SDK `Plugin` in this process; it is the same client code against
  both servers, so the ratio is the daemon's cost over the least a server can do.
- Commands: nothing can submit a command to a daemon subprocess yet (the control link is not
  built), so the daemon side runs in this process: a `GatewayServer` with a temporary home
  and a real state.db, fed through `CommandRouter.submit`, the call the control link will make.
  The plugins are subprocesses (`bench/ipc_plugin.py`), one per plugin.

`python -m bench.ipc [--runs N]` runs the command figures alone (no gateway subprocess, no
round trips), N times in one process, and prints each run; `make bench` runs everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import uvloop

from clawgate.commands import Command, CommandState
from clawgate.gateway.plugin_side import PluginSide
from clawgate.gateway.server import GatewayServer
from clawgate.gateway.settings import GatewaySettings
from clawgate.plugin import Plugin
from clawgate.protocol.auth import AuthMode, SharedSecretAuth
from clawgate.protocol.limits import Limits
from clawgate.service.logs import TextFormatter

from .procs import ServerProcess, Servers
from .report import Figure, Target, median, percentile, render_table

__all__ = ["main", "measure_commands", "measure_ipc"]

ROUNDTRIPS: Final = 5_000
ROUNDTRIP_WARMUP: Final = 500
COMMANDS: Final = 20_000
COMMAND_WARMUP: Final = 500
MANY_PLUGINS: Final = 8
#: Commands submitted and not yet terminal, per target: under the per-target queue cap (100).
WINDOW_PER_TARGET: Final = 64
#: Targets x 100 queued each = the default global queue cap (1000, spec §4.3).
QUEUED_TARGETS: Final = 10
QUEUED_PER_TARGET: Final = 100
QUEUED_ROUNDS: Final = 4
READY_TIMEOUT_S: Final = 15.0
RUN_TIMEOUT_S: Final = 60.0
_POLL_S: Final = 0.01
# Ticks would interleave with the measured frames; push them out of the run.
_TICK_INTERVAL_MS: Final = 600_000


async def measure_ipc(workdir: Path) -> list[Figure]:
    """Measure IPC round trips and command throughput; servers live under `workdir/ipc`."""
    root = workdir / "ipc"
    root.mkdir()
    with Servers(root, secrets.token_urlsafe(24), _TICK_INTERVAL_MS) as servers:
        figures = await _measure_roundtrips(servers, root)
        figures += await measure_commands(servers, root)
    return figures


@contextlib.asynccontextmanager
async def _step(stuck: str, seconds: float = RUN_TIMEOUT_S) -> AsyncIterator[None]:
    """Bound a wait; on overrun raise RuntimeError saying what was stuck.

    Not TimeoutError: `run.py` reads that as the whole run's budget running out.
    """
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise RuntimeError(f"IPC bench stuck: {stuck} after {seconds:g} s") from None


# -- round trips -----------------------------------------------------------------------------


async def _wait_for_socket(process: ServerProcess, path: Path) -> None:
    """Wait until `path` accepts connections.

    Raises:
        RuntimeError: the process exited or the socket did not open in time.
    """
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not process.running():
            raise RuntimeError(f"{process.name} exited early:\n{process.log_tail()}")
        try:
            _, writer = await asyncio.open_unix_connection(str(path))
        except OSError:
            await asyncio.sleep(_POLL_S)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"{path} not accepting after {READY_TIMEOUT_S} s:\n{process.log_tail()}")


async def _ping_latencies(socket_path: Path) -> list[float]:
    """Register an SDK plugin on `socket_path` and time sequential `ping` round trips."""
    plugin = Plugin("bench-ping", version="1.0.0", capabilities=["bench.ping"])
    samples: list[float] = []
    async with asyncio.TaskGroup() as group:
        group.create_task(plugin.run(socket_path))
        try:
            async with _step(f"ping plugin not registered on {socket_path}", READY_TIMEOUT_S):
                await plugin.wait_registered()
            for _ in range(ROUNDTRIP_WARMUP):
                await plugin.call("ping")
            clock = time.perf_counter
            for _ in range(ROUNDTRIPS):
                started = clock()
                await plugin.call("ping")
                samples.append(clock() - started)
        finally:
            await plugin.stop()
    return samples


async def _measure_roundtrips(servers: Servers, root: Path) -> list[Figure]:
    """`ping` from an SDK plugin to the gateway subprocess vs the NDJSON echo subprocess."""
    gateway = servers.gateway()
    async with aiohttp.ClientSession() as http:
        await gateway.wait_ready(http)
    assert gateway.home is not None
    gateway_socket = gateway.home / "gateway.sock"
    await _wait_for_socket(gateway, gateway_socket)
    echo_socket = root / "echo.sock"
    echo = servers.module("ipc-echo", "bench.ipc_echo", ["--socket", str(echo_socket)])
    await _wait_for_socket(echo, echo_socket)
    gw = await _ping_latencies(gateway_socket)
    ec = await _ping_latencies(echo_socket)
    servers.stop(gateway)
    servers.stop(echo)
    how = (
        f"n={len(gw)} sequential ping, SDK plugin in the bench process -> gateway subprocess; "
        "echo = same SDK client -> bench/ipc_echo.py subprocess (NDJSON, same reply size)"
    )
    return [
        Figure(
            "ipc_ping_median",
            median(gw) * 1000,
            "ms",
            median(ec) * 1000,
            Target("<", 0.3),
            how,
        ),
        Figure(
            "ipc_ping_p99",
            percentile(gw, 0.99) * 1000,
            "ms",
            percentile(ec, 0.99) * 1000,
            note=f"max {max(gw) * 1000:.2f} ms (echo {max(ec) * 1000:.2f} ms)",
        ),
    ]


# -- commands --------------------------------------------------------------------------------


def _make_home(home: Path) -> None:
    """Create a private clawgate home (the daemon refuses one others can read)."""
    home.mkdir(mode=0o700)


@contextlib.asynccontextmanager
async def _daemon(home: Path) -> AsyncIterator[GatewayServer]:
    """Run a gateway with plugin IPC in this process, logging to `<home>.log` like a daemon."""
    _make_home(home)
    settings = GatewaySettings(
        home=home,
        auth=SharedSecretAuth(AuthMode.TOKEN, secrets.token_urlsafe(24)),
        port=0,
        limits=Limits(tick_interval_ms=_TICK_INTERVAL_MS),
        state_db=home / "state.db",
        ipc_socket=home / "gateway.sock",
    )
    handler = logging.FileHandler(home.with_name(home.name + ".log"), encoding="utf-8")
    handler.setFormatter(TextFormatter())
    clawgate_logger = logging.getLogger("clawgate")
    saved = clawgate_logger.level, clawgate_logger.propagate
    clawgate_logger.addHandler(handler)
    clawgate_logger.setLevel(logging.INFO)
    clawgate_logger.propagate = False
    server = GatewayServer(settings)
    try:
        await server.start()
        assert server.plugins is not None
        yield server
    finally:
        await server.stop()
        clawgate_logger.removeHandler(handler)
        clawgate_logger.setLevel(saved[0])
        clawgate_logger.propagate = saved[1]
        handler.close()


def _host(server: GatewayServer) -> PluginSide:
    """Return the server's plugin host (always present: `_daemon` configures a socket)."""
    assert server.plugins is not None
    return server.plugins


def _spawn_plugin(
    servers: Servers, host: PluginSide, name: str, capabilities: Sequence[str]
) -> ServerProcess:
    """Start one plugin subprocess on `host`'s socket."""
    args = ["--socket", str(host.ipc.socket_path), "--name", name]
    for capability in capabilities:
        args += ["--capability", capability]
    return servers.module("plugin", "bench.ipc_plugin", args)


async def _wait_registered(host: PluginSide, plugins: dict[str, ServerProcess]) -> None:
    """Wait until every plugin in `plugins` (name -> process) is registered with `host`.

    Raises:
        RuntimeError: a plugin exited or did not register in time.
    """
    deadline = time.monotonic() + READY_TIMEOUT_S
    registry = host.registry
    while any(registry.by_name(name) is None for name in plugins):
        for process in plugins.values():
            if not process.running():
                raise RuntimeError(f"plugin exited early:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"plugins not registered after {READY_TIMEOUT_S} s")
        await asyncio.sleep(_POLL_S)


class _Tracker:
    """Follow our commands through the daemon's commits: windows, outcomes, timestamps.

    Latencies start when a command's submit is handed to the router (after its window slot
    was free): `ack_latencies` end when `submit` returns the ack (its `accepted`/`queued`
    record committed), `done_latencies` when a commit listener sees its terminal record.
    """

    def __init__(self, server: GatewayServer, window: int) -> None:
        assert server.plugins is not None
        self._server = server
        self._host = server.plugins
        self._window = window
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._open: dict[str, str] = {}  # commandId -> target key, until terminal
        self._submitted: dict[str, float] = {}  # commandId -> perf_counter at submit
        self.ack_latencies: list[float] = []
        self.done_latencies: list[float] = []
        self.outcomes: Counter[str] = Counter()
        self.first_accepted: float | None = None
        self.last_terminal = 0.0
        self._idle = asyncio.Event()
        self._idle.set()
        self._serial = 0
        # Unique per tracker: a commandId seen before is a duplicate and never runs again.
        self._prefix = f"bench-{secrets.token_hex(4)}"
        self._acks: set[asyncio.Task[dict[str, Any]]] = set()

    def on_commit(self, records: Sequence[Command]) -> None:
        """Count terminal records of ours and free their window slots (a commit listener)."""
        now = time.perf_counter()
        for record in records:
            if record.state is CommandState.ACCEPTED and self.first_accepted is None:
                self.first_accepted = now
            if not record.terminal:
                continue
            target = self._open.pop(record.command_id, None)
            if target is None:
                continue
            self.done_latencies.append(now - self._submitted.pop(record.command_id))
            self.outcomes[record.state.value] += 1
            self.last_terminal = now
            self._slots[target].release()
        if not self._open:
            self._idle.set()

    @contextlib.contextmanager
    def following(self) -> Iterator[None]:
        """Listen to the daemon's commits while inside the block."""
        unsubscribe = self._host.commands.subscribe(self.on_commit)
        try:
            yield
        finally:
            unsubscribe()

    async def stream(self, capabilities: Sequence[str], count: int) -> None:
        """Submit `count` commands round robin over `capabilities`."""
        for number in range(count):
            await self.submit(capabilities[number % len(capabilities)])

    async def submit(self, capability: str) -> None:
        """Submit one command for `capability` once its target has a free window slot."""
        target = f"capability:{capability}"
        slots = self._slots.setdefault(target, asyncio.Semaphore(self._window))
        await slots.acquire()
        self._serial += 1
        command_id = f"{self._prefix}-{self._serial}"
        self._open[command_id] = target
        self._idle.clear()
        frame = {
            "commandId": command_id,
            "name": "bench.echo",
            "target": {"capability": capability},
            "params": {"n": self._serial},
            "issuedAt": self._server.now_ms(),
        }
        # Not awaited here: a control link acks each COMMAND when its commit lands, while
        # later COMMANDs are already being read. The book takes it in call order.
        started = time.perf_counter()
        self._submitted[command_id] = started
        task = asyncio.create_task(self._host.router.submit(frame))
        self._acks.add(task)
        task.add_done_callback(self._acks.discard)
        task.add_done_callback(lambda _: self.ack_latencies.append(time.perf_counter() - started))

    async def acked(self) -> None:
        """Wait until every submitted command has been acknowledged."""
        async with _step(f"{len(self._acks)} submits not acked"):
            await asyncio.gather(*self._acks)

    async def drained(self) -> None:
        """Wait until every submitted command is terminal and every ack task has ended."""
        async with _step(f"{len(self._open)} commands not terminal"):
            await self._idle.wait()
            await asyncio.gather(*self._acks)

    def reset(self) -> None:
        """Forget outcomes and timestamps (after a warm-up)."""
        self.outcomes.clear()
        self.first_accepted = None
        self.last_terminal = 0.0
        self.ack_latencies.clear()
        self.done_latencies.clear()


@dataclass(frozen=True, slots=True)
class _Run:
    """One measured stream of commands."""

    commands: int
    seconds: float
    outcomes: Counter[str]
    ack_latencies: Sequence[float] = ()
    done_latencies: Sequence[float] = ()
    bench_cpu: float | None = None
    plugin_cpu: float | None = None

    @property
    def per_second(self) -> float:
        """Completed commands per second."""
        return self.commands / self.seconds if self.seconds > 0 else float("nan")

    def ack_ms(self, fraction: float) -> float:
        """Return a percentile of submit -> ack returned, in ms."""
        return percentile(self.ack_latencies, fraction) * 1000

    def done_ms(self, fraction: float) -> float:
        """Return a percentile of submit -> terminal commit seen, in ms."""
        return percentile(self.done_latencies, fraction) * 1000

    def latencies(self) -> str:
        """Return the latency percentiles for a note."""
        return (
            f"ack p50/p99 {self.ack_ms(0.5):.2f}/{self.ack_ms(0.99):.2f} ms, "
            f"terminal p50/p99 {self.done_ms(0.5):.2f}/{self.done_ms(0.99):.2f} ms"
        )

    def describe(self) -> str:
        """Return outcomes and CPU shares for the note."""
        done = ", ".join(f"{state} {count}" for state, count in sorted(self.outcomes.items()))
        if self.bench_cpu is None or self.plugin_cpu is None:
            return done
        return f"{done}; cpu: bench process {self.bench_cpu:.0%}, plugins {self.plugin_cpu:.0%}"


async def _live_run(servers: Servers, root: Path, plugins: int) -> _Run:
    """Stream `COMMANDS` commands, round robin over `plugins` plugins, with a window each."""
    async with _daemon(root / f"daemon-live-{plugins}") as server:
        host = _host(server)
        capabilities = [f"bench.p{index}" for index in range(plugins)]
        processes = {
            f"bench-{index}": _spawn_plugin(servers, host, f"bench-{index}", [capability])
            for index, capability in enumerate(capabilities)
        }
        await _wait_registered(host, processes)
        tracker = _Tracker(server, WINDOW_PER_TARGET)
        try:
            with tracker.following():
                await tracker.stream(capabilities, COMMAND_WARMUP)
                await tracker.drained()
                tracker.reset()
                plugin_cpu = sum(p.cpu_seconds() for p in processes.values())
                bench_cpu = time.process_time()
                started = time.perf_counter()
                await tracker.stream(capabilities, COMMANDS)
                await tracker.drained()
            wall = tracker.last_terminal - started
            bench_cpu = (time.process_time() - bench_cpu) / wall
            plugin_cpu = (sum(p.cpu_seconds() for p in processes.values()) - plugin_cpu) / wall
        finally:
            for process in processes.values():
                servers.stop(process)
    return _Run(
        COMMANDS,
        wall,
        tracker.outcomes,
        list(tracker.ack_latencies),
        list(tracker.done_latencies),
        bench_cpu,
        plugin_cpu,
    )


async def _queued_first(servers: Servers, root: Path) -> _Run:
    """Fill the queue while no plugin is connected, then time one plugin draining it."""
    capabilities = [f"bench.q{index}" for index in range(QUEUED_TARGETS)]
    per_round = QUEUED_TARGETS * QUEUED_PER_TARGET
    seconds = 0.0
    outcomes: Counter[str] = Counter()
    async with _daemon(root / "daemon-queued") as server:
        host = _host(server)
        for _ in range(QUEUED_ROUNDS):
            tracker = _Tracker(server, QUEUED_PER_TARGET)
            with tracker.following():
                await tracker.stream(capabilities, per_round)
                await tracker.acked()
                if host.commands.depth() != per_round:
                    raise RuntimeError(f"expected {per_round} queued, {host.commands.depth()}")
                process = _spawn_plugin(servers, host, "bench-drain", capabilities)
                await tracker.drained()
                servers.stop(process)
            assert tracker.first_accepted is not None
            seconds += tracker.last_terminal - tracker.first_accepted
            outcomes += tracker.outcomes
            await _wait_gone(host, "bench-drain")
    # No CPU shares: the plugin's start-up would dominate its share of so short a drain.
    return _Run(per_round * QUEUED_ROUNDS, seconds, outcomes)


async def _wait_gone(host: PluginSide, name: str) -> None:
    """Wait until the plugin `name` has left the registry."""
    async with _step(f"plugin {name} still registered", READY_TIMEOUT_S):
        while host.registry.by_name(name) is not None:
            await asyncio.sleep(_POLL_S)


async def measure_commands(servers: Servers, root: Path) -> list[Figure]:
    """Commands/s to 1 and to `MANY_PLUGINS` plugins, and draining a full queue."""
    one = await _live_run(servers, root, 1)
    many = await _live_run(servers, root, MANY_PLUGINS)
    queued = await _queued_first(servers, root)
    where = (
        "daemon in the bench process (GatewayServer, real state.db, CommandRouter.submit as the "
        "control link will call it), plugins = SDK subprocesses"
    )
    return [
        Figure(
            "ipc_commands_per_s_1plugin",
            one.per_second,
            "cmd/s",
            target=Target(">=", 10_000),
            note=f"{COMMANDS} commands, window {WINDOW_PER_TARGET}, first submit to last "
            f"terminal commit; {where}; {one.describe()}; {one.latencies()}",
        ),
        Figure(
            "ipc_command_ack_p99_1plugin",
            one.ack_ms(0.99),
            "ms",
            note=f"same run: submit -> ack returned by CommandRouter.submit (its accepted or "
            f"queued record committed); p50 {one.ack_ms(0.5):.2f} ms",
        ),
        Figure(
            "ipc_command_done_p99_1plugin",
            one.done_ms(0.99),
            "ms",
            note=f"same run: submit -> terminal commit seen by a CommandService.subscribe "
            f"listener (includes up to {WINDOW_PER_TARGET} commands queued ahead); "
            f"p50 {one.done_ms(0.5):.2f} ms",
        ),
        Figure(
            f"ipc_commands_per_s_{MANY_PLUGINS}plugins",
            many.per_second,
            "cmd/s",
            note=f"{COMMANDS} commands round robin over {MANY_PLUGINS} capabilities, one "
            f"plugin each, window {WINDOW_PER_TARGET} per target; {many.describe()}; "
            f"{many.latencies()}",
        ),
        Figure(
            "ipc_commands_per_s_queued_first",
            queued.per_second,
            "cmd/s",
            note=f"{QUEUED_ROUNDS} rounds: {QUEUED_TARGETS} targets x {QUEUED_PER_TARGET} "
            "queued (the global cap) with no plugin, then one plugin with all targets "
            f"registers; first dispatch to last terminal commit; {queued.describe()}",
        ),
    ]


async def _commands_only(runs: int, workdir: Path) -> None:
    """Run the command figures `runs` times; print each run's table."""
    for number in range(1, runs + 1):
        root = workdir / f"run-{number}"
        root.mkdir()
        with Servers(root, secrets.token_urlsafe(24), _TICK_INTERVAL_MS) as servers:
            figures = await measure_commands(servers, root)
        print(f"-- run {number}/{runs}", flush=True)
        print(render_table(figures))
        for figure in figures:
            if figure.note:
                print(f"{figure.name}: {figure.note}")
        print(flush=True)


def main() -> None:
    """Run only the IPC command figures (`make bench` runs every phase)."""
    parser = argparse.ArgumentParser(prog="python -m bench.ipc", description=main.__doc__)
    parser.add_argument("--runs", type=int, default=1, help="repeat the figures N times")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clawgate-bench-ipc-") as tmp:
        try:
            uvloop.run(_commands_only(args.runs, Path(tmp)))
        except KeyboardInterrupt:
            print("interrupted; servers stopped", file=sys.stderr)
            raise SystemExit(130) from None


if __name__ == "__main__":
    main()
