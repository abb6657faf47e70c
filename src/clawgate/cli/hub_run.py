"""`clawgate hub run`'s body: hold the pid lock, then serve until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from ..config import is_loopback_host
from ..files import AlreadyRunning, PidLock
from ..hub.settings import HubSettings
from ..service.daemon import DaemonFiles, hub_files
from ..service.logs import setup_logging
from ..service.runstate import RunState, clear_run_state, write_run_state
from ._common import fail, install_uvloop

__all__ = ["run_foreground"]


def run_foreground(settings: HubSettings, log_format: str, *, detached: bool) -> None:
    """Serve the hub in this process while it holds the pid lock (exit 3 if another does)."""
    files = hub_files(settings.config_path.parent)
    lock = PidLock(files.pid_file)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        fail(
            f"another hub is running in {files.pid_file.parent} ({exc}); "
            "stop it with `clawgate hub stop`",
            3,
        )
    try:
        _run_locked(settings, files, log_format, detached=detached)
    finally:
        lock.release()


def _run_locked(
    settings: HubSettings, files: DaemonFiles, log_format: str, *, detached: bool
) -> None:
    """Set up logging and run the server; map the failures that stop it to exit codes."""
    setup_logging("info", log_format, files.log_file)
    from ..hub.store import HubLocked, HubStoreError  # the server side loads only here

    install_uvloop()
    try:
        asyncio.run(_serve(settings, files, detached=detached))
    except HubLocked as exc:
        fail(str(exc), 3)
    except HubStoreError as exc:
        fail(str(exc), 2)
    except ConnectionError as exc:
        fail(f"{exc}; check --bus-url and that nats-server runs", 2)
    except OSError as exc:
        fail(f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}); pass --port", 2)


async def _serve(settings: HubSettings, files: DaemonFiles, *, detached: bool) -> None:
    """Start the server, record its run state and say where it listens; stop on a signal."""
    from ..hub.server import HubServer

    server = HubServer(settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    state_path = files.run_state
    started_ms = int(time.time() * 1000)
    write_run_state(
        state_path,
        RunState.new(
            "hub",
            url=server.url,
            port=server.port,
            boot_id=server.boot_id,
            started_ms=started_ms,
            identity_key=server.identity_key,
            detached=detached,
        ),
    )
    origin = "generated and stored in" if settings.generated else "in"
    lines = [
        f"clawgate hub {server.url} (pid {os.getpid()})",
        f"  daemons: cloud.url = {server.link_url}",
        f"  admin token: {origin} {settings.config_path}",
        f"  database: {settings.database}",
        f"  bus: {'NATS' if settings.bus_url else 'in process'}",
    ]
    if not is_loopback_host(settings.host):
        lines.append(
            f"  listening on {settings.host}: plain HTTP, so the admin token and daemon keys "
            "cross the network in clear; put a TLS proxy in front (docs/hub-scale-out.md)"
        )
    print("\n".join(lines), flush=True)
    try:
        await stop.wait()
    finally:
        clear_run_state(state_path, server.boot_id)
        await server.stop()
