"""Hub instances as real processes, self-reconnecting simulated daemons, and the chaos run.

Shared by ``tests/integration/cluster/test_chaos.py`` (small sizes) and ``bench/hub_cluster.py``
(the issue's sizes). Everything is on loopback; every loop is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import asyncpg

from tests.fakes.balancer import Balancer
from tests.fakes.hub_daemon import SimDaemon
from tests.servers import NatsServer, PostgresServer, free_port

__all__ = ["ChaosLine", "HubProcess", "ReconnectingDaemon", "run_chaos"]

CLAWGATE: Final = [sys.executable, "-m", "clawgate.cli"]
_TERMINAL: Final = ("done", "failed", "expired", "rejected")


def _debug(text: str) -> None:
    if os.environ.get("CLAWGATE_CHAOS_DEBUG"):
        print(text, flush=True)


class HubProcess:
    """One ``clawgate hub run`` on PostgreSQL and NATS, started and killed by pid."""

    def __init__(
        self,
        home: Path,
        *,
        database_url: str,
        bus_url: str,
        admin_token: str,
        secrets_key: bytes,
        sweep_interval_s: float = 1.0,
        heartbeat_ms: int = 2000,
    ) -> None:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.home = home
        self.port = free_port()
        self.config = home / "hub.toml"
        self.config.write_text(
            f'listen = "127.0.0.1:{self.port}"\nadmin_token = "{admin_token}"\n'
            f"sweep_interval_s = {sweep_interval_s}\nheartbeat_interval_ms = {heartbeat_ms}\n"
        )
        self.config.chmod(0o600)
        self.args = [
            *CLAWGATE,
            "hub",
            "run",
            "--config",
            str(self.config),
            "--database-url",
            database_url,
            "--bus-url",
            bus_url,
        ]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWGATE_")}
        self.env["CLAWGATE_HOME"] = str(home)
        self.env["CLAWGATE_HUB_SECRETS_KEY"] = base64.b64encode(secrets_key).decode()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        """Start the process, its output appended to ``hub.log``."""
        with open(self.home / "hub.log", "ab") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=log)

    async def start(self, timeout: float = 30.0) -> None:
        """Start and wait for /readyz."""
        self.spawn()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"hub exited {self.proc.returncode}; see {self.home}")
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(self.url + "/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"hub on {self.port} not ready within {timeout:g} s")

    def kill(self) -> None:
        """kill -9."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then kill -9 after 10 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def rss_kib(self) -> int:
        """Return the resident set size of the process in KiB."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0


class ReconnectingDaemon:
    """A simulated daemon that reconnects after every close, keeping what it executed.

    Its records survive reconnects as a real daemon's ``state.db`` does: a re-sent COMMAND is
    answered with the recorded terminal ack, never executed again (spec §4.1).
    """

    def __init__(self, url: str, key: str, *, max_backoff_s: float = 1.0) -> None:
        self.url = url
        self.key = key
        self.daemon_id = secrets.token_hex(8)
        self.max_backoff_s = max_backoff_s
        self.executed: dict[str, int] = {}
        self.terminal_acks: dict[str, dict[str, Any]] = {}
        self.connected = asyncio.Event()
        self.sessions = 0
        self.current: SimDaemon | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until ``stop`` is set."""
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                sim = SimDaemon(self.url, self.key, daemon_id=self.daemon_id)
                sim.executed = self.executed
                sim.terminal_acks = self.terminal_acks
                self.current = sim
                try:
                    ack = await sim.connect()
                except Exception:
                    ack = None
                if ack is not None and sim._reader is not None:
                    self.sessions += 1
                    self.connected.set()
                    await asyncio.wait({sim._reader, stopping}, return_when=asyncio.FIRST_COMPLETED)
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await sim.close()
                if not stop.is_set():
                    await asyncio.sleep(random.uniform(0.05, self.max_backoff_s))
        finally:
            stopping.cancel()


@dataclass
class ChaosLine:
    """One fault and what happened to the commands posted after it."""

    fault: str
    sent: int = 0
    acked: int = 0
    executed: int = 0
    duplicates: int = 0
    lost: int = 0
    recover_s: float = float("nan")
    command_ids: list[str] = field(default_factory=list)

    def render(self) -> str:
        return (
            f"{self.fault:<22} sent {self.sent:>5} / acked {self.acked:>5} / executed "
            f"{self.executed:>5} / duplicates {self.duplicates} / lost {self.lost} / "
            f"recovered in {self.recover_s:.2f} s"
        )


async def _post(
    http: aiohttp.ClientSession,
    urls: list[str],
    start: int,
    token: str,
    daemon_id: str,
    key: str,
    *,
    deadline: float,
    wait_s: float = 0,
) -> dict[str, Any]:
    """POST a command with an idempotency key, moving to the next instance on failure."""
    body = {"name": "chaos.run", "target": {"plugin": "p"}, "params": {}, "idempotencyKey": key}
    headers = {"Authorization": f"Bearer {token}"}
    for attempt in itertools.count():
        url = urls[(start + attempt) % len(urls)]
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with http.post(
                f"{url}/v1/daemons/{daemon_id}/commands?wait={wait_s:g}",
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=wait_s + 10),
            ) as response:
                if response.status in (200, 201, 202):
                    return dict(await response.json())
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not post {key} before the deadline")
        await asyncio.sleep(0.1)
    raise AssertionError("unreachable")


async def _recovered(
    http: aiohttp.ClientSession,
    urls: list[str],
    token: str,
    daemons: list[ReconnectingDaemon],
    since: float,
    label: str,
    limit_s: float,
) -> float:
    """Return seconds from ``since`` until every daemon is connected and a probe ends done."""
    deadline = time.monotonic() + limit_s
    for n in itertools.count():
        if all(d.connected.is_set() for d in daemons):
            probe = daemons[n % len(daemons)]
            record = await _post(
                http,
                urls,
                n,
                token,
                probe.daemon_id,
                f"probe-{label}-{n}",
                deadline=deadline,
                wait_s=2,
            )
            if record.get("state") == "done":
                return time.monotonic() - since
            _debug(f"{label}: probe {n} {record.get('state')} at {time.monotonic() - since:.2f}")
        if time.monotonic() > deadline:
            return float("inf")
        await asyncio.sleep(0.05)
    raise AssertionError("unreachable")


async def run_chaos(
    pg: PostgresServer,
    nats: NatsServer,
    home: Path,
    *,
    daemons: int = 300,
    commands: int = 3000,
    rate: float = 150.0,
    settle_s: float = 90.0,
    log: Callable[[str], None] = print,
) -> list[ChaosLine]:
    """Three instances, ``daemons`` daemons, ``commands`` posted round robin; four faults.

    Faults, each after a quarter of the commands: kill -9 the instance holding most
    daemons; restart nats-server; restart PostgreSQL; start the killed instance again.
    """
    database = pg.create_database(f"chaos_{os.getpid()}_{secrets.token_hex(3)}")
    token, key = secrets.token_urlsafe(24), os.urandom(32)
    hubs = [
        HubProcess(
            home / f"hub{i}",
            database_url=database,
            bus_url=nats.url,
            admin_token=token,
            secrets_key=key,
        )
        for i in range(3)
    ]
    await asyncio.gather(*(h.start() for h in hubs))
    balancer = Balancer([h.port for h in hubs])
    await balancer.start()
    urls = [h.url for h in hubs]
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    lines = [ChaosLine("start")]
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as http:
            async with http.post(
                urls[0] + "/v1/keys",
                json={"label": "chaos"},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                daemon_key = (await response.json())["key"]
            link = f"ws://127.0.0.1:{balancer.port}/v1/daemon"
            sims = [ReconnectingDaemon(link, daemon_key) for _ in range(daemons)]
            tasks = [asyncio.create_task(d.run(stop)) for d in sims]
            async with asyncio.timeout(60):
                await asyncio.gather(*(d.connected.wait() for d in sims))

            async def held(hub: HubProcess) -> int:
                async with http.get(hub.url + "/metrics") as response:
                    for line in (await response.text()).splitlines():
                        if line.startswith("clawgate_hub_held_daemons "):
                            return int(float(line.split()[1]))
                return 0

            counts = [await held(h) for h in hubs]
            victim = hubs[counts.index(max(counts))]
            log(f"chaos: {daemons} daemons held {counts}; killing the instance on {victim.port}")

            async def kill_instance() -> None:
                victim.kill()

            async def restart_nats() -> None:
                nats.terminate()
                nats.start()

            async def restart_postgres() -> None:
                pg.terminate()
                pg.start()

            async def restart_instance() -> None:
                await victim.start()

            faults: list[tuple[str, Callable[[], Any]]] = [
                ("kill -9 instance", kill_instance),
                ("restart nats-server", restart_nats),
                ("restart postgresql", restart_postgres),
                ("restart instance", restart_instance),
            ]
            per_phase = commands // (len(faults) + 1)
            sem = asyncio.Semaphore(48)
            posts: list[asyncio.Task[None]] = []
            recoveries: list[asyncio.Task[float]] = []
            deadline = time.monotonic() + settle_s + commands / rate

            async def post_one(n: int, line: ChaosLine) -> None:
                async with sem:
                    daemon = sims[n % len(sims)]
                    record = await _post(
                        http, urls, n, token, daemon.daemon_id, f"cmd-{n}", deadline=deadline
                    )
                    line.command_ids.append(record["commandId"])

            n = 0
            started = time.monotonic()
            for phase in range(len(faults) + 1):
                line = lines[-1]
                for _ in range(per_phase if phase < len(faults) else commands - n):
                    posts.append(asyncio.create_task(post_one(n, line)))
                    line.sent += 1
                    n += 1
                    ahead = n / rate - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                if phase < len(faults):
                    name, fault = faults[phase]
                    at = time.monotonic()
                    await fault()
                    lines.append(ChaosLine(name))
                    recoveries.append(
                        asyncio.create_task(
                            _recovered(http, urls, token, sims, at, f"p{phase}", settle_s)
                        )
                    )
            await asyncio.gather(*posts)
            for line, recovery in zip(lines[1:], recoveries, strict=True):
                line.recover_s = await recovery
            # Settle: every posted command ends.
            conn = await asyncpg.connect(database)
            try:
                settle_deadline = time.monotonic() + settle_s
                while True:
                    open_count = await conn.fetchval(
                        "SELECT count(*) FROM commands WHERE NOT terminal"
                        " AND idempotency_key LIKE 'cmd-%'"
                    )
                    if open_count == 0 or time.monotonic() > settle_deadline:
                        break
                    await asyncio.sleep(0.25)
                rows = await conn.fetch(
                    "SELECT c.command_id, c.terminal, (SELECT count(*) FROM command_acks a"
                    " WHERE a.command_id = c.command_id AND a.body::json->>'state' = ANY($1))"
                    " AS terminal_acks FROM commands c WHERE c.idempotency_key LIKE 'cmd-%'",
                    list(_TERMINAL),
                )
            finally:
                await conn.close()
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        await balancer.stop()
        for hub in hubs:
            hub.stop()
    by_id = {r["command_id"]: r for r in rows}
    executed: dict[str, int] = {}
    for sim in sims:
        for command_id, count in sim.executed.items():
            executed[command_id] = executed.get(command_id, 0) + count
    for line in lines:
        for command_id in line.command_ids:
            row = by_id.get(command_id)
            if row is None or not row["terminal"]:
                line.lost += 1
                continue
            line.acked += int(row["terminal_acks"] == 1)
            line.executed += int(executed.get(command_id, 0) >= 1)
            line.duplicates += int(executed.get(command_id, 0) > 1)
        log(line.render())
    return lines
