"""Server subprocesses: spawn the gateway or the echo server, wait for ready, measure, stop."""

from __future__ import annotations

import asyncio
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final

import aiohttp
import psutil

__all__ = [
    "REPO_ROOT",
    "ServerProcess",
    "Servers",
    "free_port",
    "hub_process",
]

REPO_ROOT: Final = Path(__file__).resolve().parent.parent
_READY_TIMEOUT_S: Final = 15.0
_READY_POLL_S: Final = 0.005
_STOP_TIMEOUT_S: Final = 5.0
_PR_SET_PDEATHSIG: Final = 1


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this child if the bench runner dies without cleaning up."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _clawgate_command() -> str:
    """Return the `clawgate` console script next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "clawgate"
    if beside.exists():
        return str(beside)
    found = shutil.which("clawgate")
    if found is None:
        raise RuntimeError("clawgate console script not found; run `make bench` from the repo")
    return found


def hub_process(home: Path, log: Path, admin_token: str) -> ServerProcess:
    """Spawn `clawgate hub run` on a free port with `home` as its private home."""
    home.mkdir(mode=0o700)
    port = free_port()
    env = dict(os.environ, CLAWGATE_HOME=str(home), CLAWGATE_HUB_ADMIN_TOKEN=admin_token)
    argv = [_clawgate_command(), "hub", "run", "--port", str(port)]
    return ServerProcess("hub", argv, port, env, log)


class ServerProcess:
    """One server subprocess listening on 127.0.0.1:`port` (0: no TCP port, e.g. a plugin)."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        env: dict[str, str],
        log: Path,
        home: Path | None = None,
    ):
        self.name = name
        self.port = port
        self.log_path = log
        #: The clawgate home of a gateway (its `gateway.sock` lives there), else None.
        self.home = home
        self.spawned_at = time.monotonic()
        with log.open("wb") as out:
            self._popen = subprocess.Popen(
                argv,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        self._process = psutil.Process(self._popen.pid)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self._popen.pid

    @property
    def ws_url(self) -> str:
        """The WebSocket URL."""
        return f"ws://127.0.0.1:{self.port}/"

    def running(self) -> bool:
        """Return whether the process has not exited yet."""
        return self._popen.poll() is None

    def rss_bytes(self) -> int:
        """Return the server's resident set size now."""
        return int(self._process.memory_info().rss)

    def cpu_seconds(self) -> float:
        """Return the user + system CPU time the server has used so far."""
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines of the server's output, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def wait_ready(self, session: aiohttp.ClientSession) -> float:
        """Poll `GET /readyz` until 200; return seconds since spawn.

        Raises:
            RuntimeError: the process exited or did not become ready in time.
        """
        url = f"http://127.0.0.1:{self.port}/readyz"
        deadline = self.spawned_at + _READY_TIMEOUT_S
        timeout = aiohttp.ClientTimeout(total=1.0)
        while time.monotonic() < deadline:
            if self._popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                async with session.get(url, timeout=timeout) as response:
                    if response.status == 200:
                        return time.monotonic() - self.spawned_at
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(_READY_POLL_S)
        raise RuntimeError(f"{self.name} not ready after {_READY_TIMEOUT_S} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the server, then SIGKILL it if it does not exit in time."""
        if self._popen.poll() is not None:
            return
        self._popen.terminate()
        try:
            self._popen.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait(_STOP_TIMEOUT_S)


class Servers:
    """Spawns servers into `workdir` and stops every one of them on exit, even on error."""

    def __init__(self, workdir: Path, token: str, tick_interval_ms: int) -> None:
        self._workdir = workdir
        self._token = token
        self._tick_interval_ms = tick_interval_ms
        self._spawned: list[ServerProcess] = []
        self._serial = 0

    def __enter__(self) -> Servers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()

    def log_problems(self, limit: int = 5) -> list[str]:
        """Return up to `limit` WARNING/ERROR/Traceback lines from every server log so far."""
        found: list[str] = []
        # One level down too: a phase may keep its servers in a subdirectory (bench/ipc.py).
        logs = sorted(self._workdir.glob("*.log")) + sorted(self._workdir.glob("*/*.log"))
        for log in logs:
            text = log.read_text(encoding="utf-8", errors="replace")
            for line in text.splitlines():
                if " WARNING " in line or " ERROR " in line or line.startswith("Traceback"):
                    found.append(f"{log.name}: {line[:200]}")
                    if len(found) >= limit:
                        return found
        return found

    def stop_all(self) -> None:
        """Stop every server spawned so far."""
        while self._spawned:
            self._spawned.pop().stop()

    def gateway(
        self,
        extra_config: str = "",
        extra_env: dict[str, str] | None = None,
        prepare: Callable[[Path], None] | None = None,
    ) -> ServerProcess:
        """Spawn `clawgate gateway run` with a fresh home directory and config.

        `extra_config` is appended to config.toml (e.g. an `[agent]` section); `extra_env`
        is added to the environment (e.g. `CLAWGATE_API_KEY`, kept out of every file);
        `prepare` is called with the home before the spawn (e.g. to put a state.db there).
        """
        index = self._next_index()
        home = self._workdir / f"gateway-home-{index}"
        home.mkdir(mode=0o700)
        port = free_port()
        config = home / "config.toml"
        config.write_text(
            f"[gateway]\nport = {port}\ntick_interval_ms = {self._tick_interval_ms}\n"
            + extra_config,
            encoding="utf-8",
        )
        config.chmod(0o600)  # the gateway refuses a config file others can read
        if prepare is not None:
            prepare(home)
        argv = [_clawgate_command(), "gateway", "run", "--port", str(port)]
        argv += ["--auth", "token", "--token", self._token]
        env = dict(os.environ, CLAWGATE_HOME=str(home), **(extra_env or {}))
        log = self._workdir / f"gateway-{index}.log"
        return self._track(ServerProcess("gateway", argv, port, env, log, home))

    def echo(self) -> ServerProcess:
        """Spawn the echo server (`python -m bench.echo_server`)."""
        index = self._next_index()
        port = free_port()
        argv = [sys.executable, "-m", "bench.echo_server", "--port", str(port)]
        log = self._workdir / f"echo-{index}.log"
        return self._track(ServerProcess("echo", argv, port, dict(os.environ), log))

    def hub(self, admin_token: str) -> ServerProcess:
        """Spawn `clawgate hub run` with a fresh home; operators use `admin_token`."""
        index = self._next_index()
        home = self._workdir / f"hub-home-{index}"
        return self._track(hub_process(home, self._workdir / f"hub-{index}.log", admin_token))

    def module(self, name: str, module: str, args: list[str]) -> ServerProcess:
        """Spawn `python -m <module> <args>` without a TCP port (IPC echo server, plugins)."""
        index = self._next_index()
        argv = [sys.executable, "-m", module, *args]
        log = self._workdir / f"{name}-{index}.log"
        return self._track(ServerProcess(name, argv, 0, dict(os.environ), log))

    def _next_index(self) -> int:
        """Return a number unique to this run for the next server's files."""
        self._serial += 1
        return self._serial

    def _track(self, server: ServerProcess) -> ServerProcess:
        """Remember `server` so it is stopped on exit."""
        self._spawned.append(server)
        return server

    def stop(self, server: ServerProcess) -> None:
        """Stop one server now."""
        server.stop()
        if server in self._spawned:
            self._spawned.remove(server)
