"""Real processes for control-link tests: a hub, a linked daemon, a plugin, and the CLI.

Everything here is async, because the fault tests run a TCP proxy in the test's own event
loop: a blocking call would freeze the proxy and fake a network outage.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from tests.e2e.test_cli import CLAWGATE, env_for, free_port
from tests.e2e.test_daemon import configure, recorded_pid

__all__ = [
    "REPO_ROOT",
    "TERMINAL",
    "CliResult",
    "HubProcess",
    "PluginProcess",
    "cli",
    "configure_linked",
    "eventually",
    "kill_gateway",
    "read_jsonl",
    "start_gateway",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = frozenset({"done", "failed", "expired", "rejected"})
T = TypeVar("T")


@dataclass(frozen=True)
class CliResult:
    """A finished ``clawgate`` run."""

    code: int
    out: str
    err: str


async def cli(home: Path, *args: str, timeout: float = 30, **extra: str) -> CliResult:
    """Run ``clawgate ARGS`` with ``CLAWGATE_HOME=home`` without blocking the loop."""
    proc = await asyncio.create_subprocess_exec(
        *CLAWGATE,
        *args,
        env=env_for(home, **extra),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return CliResult(proc.returncode, out.decode(), err.decode())


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something truthy, or fail saying ``what``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON-lines file; a missing file reads as empty."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class HubProcess:
    """``clawgate hub run`` as a subprocess, restartable on the same port and database."""

    home: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    http: aiohttp.ClientSession | None = None

    @property
    def db(self) -> Path:
        return self.home / "hub.db"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str:
        return str(tomllib.loads((self.home / "hub.toml").read_text())["admin_token"])

    async def start(self) -> None:
        """Start the hub and wait until ``/readyz`` answers 200."""
        self.home.mkdir(mode=0o700, exist_ok=True)
        log = (self.home / "hub.out").open("ab")
        self.process = await asyncio.create_subprocess_exec(
            *CLAWGATE,
            *("hub", "run", "--port", str(self.port), "--db", str(self.db)),
            env=env_for(self.home),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        log.close()
        if self.http is None:
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=70))

        async def ready() -> bool:
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"hub exited: {(self.home / 'hub.out').read_text()}")
            try:
                async with self.http.get(f"{self.url}/readyz") as response:  # type: ignore[union-attr]
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, 20, "the hub to be ready")

    async def kill(self) -> None:
        """SIGKILL the hub (no close frames, no clean shutdown)."""
        assert self.process is not None
        self.process.kill()
        await asyncio.wait_for(self.process.wait(), 10)

    async def stop(self) -> None:
        """SIGTERM the hub if it runs, and close the HTTP session."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self.http is not None:
            await self.http.close()
            self.http = None

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Call the operator API with the admin token."""
        assert self.http is not None
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        async with self.http.request(
            method, self.url + path, json=body, headers=headers
        ) as response:
            return response.status, await response.json()

    async def new_key(self) -> str:
        """Issue a daemon key through ``clawgate hub keys create --json``."""
        made = await cli(self.home, "hub", "keys", "create", "--json", "--url", self.url)
        assert made.code == 0, made.err
        return str(json.loads(made.out)["key"])

    async def only_daemon(self, timeout: float = 20) -> str:
        """Wait until exactly one daemon is connected and return its id."""

        async def listed() -> str | None:
            _, body = await self.call("GET", "/v1/daemons")
            live = [d["daemonId"] for d in body["daemons"] if d["connected"]]
            return live[0] if len(live) == 1 else None

        return await eventually(listed, timeout, "the daemon to connect to the hub")

    async def daemon(self, daemon_id: str) -> dict[str, Any]:
        """Return the hub's record of a daemon, with its last report."""
        status, body = await self.call("GET", f"/v1/daemons/{daemon_id}")
        assert status == 200, body
        return dict(body)

    async def converged_at(self, daemon_id: str, revision: int, timeout: float = 30) -> Any:
        """Wait until the daemon's last report is converged at ``revision``."""

        async def check() -> dict[str, Any] | None:
            record = await self.daemon(daemon_id)
            report = record.get("lastReport") or {}
            ok = (
                record["converged"]
                and record["lastAppliedRevision"] == revision
                and report.get("revision") == revision
                and report.get("converged")
            )
            return record if ok else None

        return await eventually(check, timeout, f"a converged report at revision {revision}")


def configure_linked(home: Path, link_url: str, api_key: str) -> None:
    """Write a daemon config.toml with a free port and the control link to ``link_url``."""
    configure(home, free_port())
    config = home / "config.toml"
    config.write_text(
        config.read_text() + f'\n[cloud]\nurl = "{link_url}"\n\n[auth]\napi_key = "{api_key}"\n'
    )


async def start_gateway(home: Path) -> int:
    """Run ``clawgate gateway start`` and return the daemon's pid."""
    started = await cli(home, "gateway", "start")
    assert started.code == 0, started.err + started.out
    return recorded_pid(home)


async def kill_gateway(home: Path) -> None:
    """SIGKILL the daemon and wait until it is gone."""
    pid = recorded_pid(home)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"daemon pid {pid} survived SIGKILL")


@dataclass
class PluginProcess:
    """A plugin module run as ``python -m MODULE --root ROOT ARGS`` against a daemon home."""

    home: Path
    root: Path
    module: str = "tests.fakes.fault_plugin"
    args: tuple[str, ...] = ()
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start the plugin; it connects (and reconnects) to the daemon on its own."""
        log = (self.root.parent / f"{self.root.name}.plugin.log").open("ab")
        self.process = await asyncio.create_subprocess_exec(
            *CLAWGATE[:1],
            "-m",
            self.module,
            "--root",
            str(self.root),
            *self.args,
            env=env_for(self.home, PYTHONPATH=str(REPO_ROOT)),
            cwd=REPO_ROOT,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log,
        )
        log.close()

    async def stop(self) -> None:
        """SIGTERM the plugin and wait for it."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
