"""Cron at scale: 10,000 jobs loaded (start-up, memory, idle timer and CPU), 1,000 firing at once.

Two gateways are compared in the same run: one whose state.db holds 10,000 jobs (a third
each `cron` in one of five zones, `every` and `at`, all next due an hour or more away) and
one with none. The jobs are written straight into a template state.db with the gateway's
own code (`automation` records, `store.cron_repo`), then copied into each gateway's home.
For firing accuracy, 1,000 more jobs are added over the wire to the 10,000-job gateway,
each a 6-field cron expression due at the same second; lateness is the time from that
second to this process receiving each job's `started` event.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import aiohttp

from clawgate.automation.jobs import CronJob, JobSpec
from clawgate.client import GatewayClient
from clawgate.store import StateStore
from clawgate.store.cron_repo import JobRow, upsert_job

from .procs import ServerProcess, Servers
from .report import Figure, Target, median, percentile

__all__ = ["FIRING_JOBS", "LOADED_JOBS", "measure_cron"]

LOADED_JOBS: Final = 10_000
FIRING_JOBS: Final = 1_000
STARTS: Final = 3
IDLE_WINDOW_S: Final = 10.0
SETTLE_S: Final = 1.0
#: The firing second is this far after the last of the 1,000 jobs was added.
FIRE_LEAD_S: Final = 3.0
CRON_CONFIG: Final = 'timezone = "UTC"\n\n[agent]\nbackend = "echo"\necho_delay_ms = 0\n'
_ZONES: Final = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Sydney")
_HOUR_MS: Final = 3_600_000


def _job(index: int, now_ms: int) -> CronJob:
    """Return job `index`: cron, every or at by turns, next due at least an hour from now."""
    kind = index % 3
    if kind == 0:
        expr = f"{index % 60} {index % 24} * * {index % 7}"
        schedule: dict[str, Any] = {"kind": "cron", "expr": expr, "tz": _ZONES[index % 5]}
    elif kind == 1:
        every = (2 + index % 46) * _HOUR_MS
        schedule = {"kind": "every", "everyMs": every, "anchorMs": now_ms + _HOUR_MS}
    else:
        schedule = {"kind": "at", "atMs": now_ms + _HOUR_MS + index * 60_000}
    payload = {"kind": "agentTurn", "message": f"job {index}: summarise what is new"}
    data = {"name": f"job-{index}", "schedule": schedule, "payload": payload}
    spec = JobSpec.from_wire(data, default_tz="UTC", created_ms=now_ms, check=kind == 0)
    job = CronJob(f"bench-{index:05d}", spec, now_ms, now_ms)
    job.state.next_run_ms = spec.schedule.next_after(now_ms + _HOUR_MS)
    return job


async def _template(path: Path, count: int) -> None:
    """Write a state.db holding `count` jobs, with the gateway's own store code."""
    now_ms = int(time.time() * 1000)
    rows = []
    for index in range(count):
        job = _job(index, now_ms)
        rows.append(JobRow(job.id, job.spec.wire(), job.state.stored(), now_ms, now_ms))
    store = StateStore(path)
    await store.open()
    try:
        await store.write(lambda conn: [upsert_job(conn, row) for row in rows])
    finally:
        await store.close()


def _with_state(template: Path) -> Any:
    def prepare(home: Path) -> None:
        target = home / "state.db"
        shutil.copyfile(template, target)
        target.chmod(0o600)

    return prepare


async def _starts(
    servers: Servers, http: aiohttp.ClientSession, template: Path | None
) -> tuple[list[float], ServerProcess]:
    """Start a gateway `STARTS` times (with the template's jobs); keep the last running."""
    seconds: list[float] = []
    gateway: ServerProcess | None = None
    for _ in range(STARTS):
        if gateway is not None:
            servers.stop(gateway)
        prepare = _with_state(template) if template is not None else None
        gateway = servers.gateway(CRON_CONFIG, prepare=prepare)
        seconds.append(await gateway.wait_ready(http))
    assert gateway is not None
    return seconds, gateway


async def _wakeups(http: aiohttp.ClientSession, server: ServerProcess) -> float:
    """Return the `clawgate_cron_timer_wakeups` counter from /metrics."""
    async with http.get(f"http://127.0.0.1:{server.port}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith("clawgate_cron_timer_wakeups_total "):
            return float(line.split()[1])
    raise RuntimeError(f"no cron wake-up counter on /metrics of {server.name}")


def _client(server: ServerProcess, token: str) -> GatewayClient:
    return GatewayClient(
        server.ws_url,
        token=token,
        client_id="cli",
        client_version="1",
        platform="linux",
        client_mode="cli",
        scopes=["operator.admin"],
    )


async def _fire(server: ServerProcess, token: str) -> tuple[list[float], list[float], float]:
    """Add `FIRING_JOBS` jobs due at one second; return client and server lateness (ms)."""
    async with _client(server, token) as client:
        events = client.events(maxsize=1_000_000)
        # Due at a whole second far enough ahead that every job is added before it.
        added_by = time.time() + 12.0
        due_s = math.ceil(added_by + FIRE_LEAD_S)
        due = datetime.fromtimestamp(due_s, UTC)
        expr = f"{due.second} {due.minute} {due.hour} {due.day} {due.month} *"
        payload = {"kind": "agentTurn", "message": "fire"}
        began = time.monotonic()

        async def add(index: int) -> None:
            schedule = {"kind": "cron", "expr": expr, "tz": "UTC"}
            params = {"name": f"fire-{index}", "schedule": schedule, "payload": payload}
            await client.call("cron.add", params)

        for first in range(0, FIRING_JOBS, 100):
            await asyncio.gather(*(add(i) for i in range(first, min(first + 100, FIRING_JOBS))))
        adding_s = time.monotonic() - began
        if time.time() > due_s - 0.5:
            raise RuntimeError(
                f"adding {FIRING_JOBS} jobs took {adding_s:.1f} s: past the firing second"
            )
        due_ms = due_s * 1000
        client_late: list[float] = []
        server_late: list[float] = []
        async with asyncio.timeout(due_s - time.time() + 30):
            async for event in events:
                if event.event != "cron" or event.payload.get("action") != "started":
                    continue
                received = time.time() * 1000
                client_late.append(received - due_ms)
                server_late.append(event.payload["runAtMs"] - due_ms)
                if len(client_late) == FIRING_JOBS:
                    break
        return client_late, server_late, adding_s


async def measure_cron(servers: Servers, http: aiohttp.ClientSession, token: str) -> list[Figure]:
    """Start-up, memory, idle timer and CPU with 10,000 jobs; p99 lateness of 1,000 at once."""
    with tempfile.TemporaryDirectory(prefix="clawgate-bench-cron-") as tmp:
        template = Path(tmp) / "state.db"
        began = time.monotonic()
        await _template(template, LOADED_JOBS)
        build_s = time.monotonic() - began
        empty_s, empty = await _starts(servers, http, None)
        loaded_s, loaded = await _starts(servers, http, template)
    await asyncio.sleep(SETTLE_S)
    rss_empty, rss_loaded = empty.rss_bytes(), loaded.rss_bytes()
    wakeups_before = await _wakeups(http, loaded)
    cpu_empty, cpu_loaded = empty.cpu_seconds(), loaded.cpu_seconds()
    await asyncio.sleep(IDLE_WINDOW_S)
    idle_cpu_empty = (empty.cpu_seconds() - cpu_empty) / IDLE_WINDOW_S * 100
    idle_cpu_loaded = (loaded.cpu_seconds() - cpu_loaded) / IDLE_WINDOW_S * 100
    wakeups = (await _wakeups(http, loaded) - wakeups_before) / IDLE_WINDOW_S
    servers.stop(empty)
    client_late, server_late, adding_s = await _fire(loaded, token)
    servers.stop(loaded)
    mib = 1024 * 1024
    started = ", ".join(f"{s * 1000:.0f}" for s in loaded_s)
    return [
        Figure(
            "cron_startup_10k_jobs",
            median(loaded_s) * 1000,
            "ms",
            median(empty_s) * 1000,
            note=(
                f"spawn to /readyz 200 with {LOADED_JOBS} jobs in state.db, median of "
                f"{STARTS} ({started} ms); baseline: no jobs; added "
                f"{(median(loaded_s) - median(empty_s)) * 1000:.0f} ms; template built in "
                f"{build_s:.1f} s"
            ),
        ),
        Figure(
            "cron_rss_10k_jobs",
            rss_loaded / mib,
            "MiB",
            rss_empty / mib,
            note=(
                f"RSS 1 s after ready; added {(rss_loaded - rss_empty) / mib:.1f} MiB, "
                f"{(rss_loaded - rss_empty) / LOADED_JOBS:.0f} bytes a job"
            ),
        ),
        Figure(
            "cron_idle_wakeups_per_s",
            wakeups,
            "/s",
            target=Target("<", 1),
            note=f"the cron timer's wake-ups over {IDLE_WINDOW_S:g} s idle with {LOADED_JOBS} jobs",
        ),
        Figure(
            "cron_idle_cpu",
            idle_cpu_loaded,
            "% core",
            idle_cpu_empty,
            note=f"CPU over {IDLE_WINDOW_S:g} s idle with {LOADED_JOBS} jobs; baseline: no jobs",
        ),
        Figure(
            "cron_fire_p99_lateness",
            percentile(client_late, 0.99),
            "ms",
            target=Target("<", 250),
            note=(
                f"{len(client_late)} of {FIRING_JOBS} jobs due at one second (with "
                f"{LOADED_JOBS} more loaded): due second to `started` received, p50 "
                f"{percentile(client_late, 0.5):.0f} ms, max {max(client_late):.0f} ms; "
                f"recorded start p99 {percentile(server_late, 0.99):.0f} ms; adding them took "
                f"{adding_s:.1f} s"
            ),
        ),
    ]
