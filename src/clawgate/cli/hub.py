"""`clawgate hub …`: run the self-hostable hub and drive its operator API over HTTP.

This module holds the group and the service commands (run, migrate, start, stop, restart,
status, logs); the operator commands live in `hub_daemons.py`, `hub_commands.py` and
`hub_keys.py`, on the client in `hub_client.py`, and are added to the group at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ..config import ConfigError, bind_host
from ..files import running_pid
from ..hub.settings import (
    DEFAULT_PORT,
    ENV_ADMIN_TOKEN,
    HubSettings,
    HubSettingsError,
    load_settings,
    read_settings_file,
)
from ..service.daemon import DETACHED_ENV, DaemonFiles, hub_files, start_detached
from ..service.runstate import NotRunning, find_running
from . import hub_commands, hub_daemons, hub_keys
from . import install as install_commands
from ._common import console, fail, print_json
from .daemon_ops import refuse_foreign_restart, show_logs, stop_and_say
from .hub_client import ConfigOption, JsonOption, hub_config_path
from .hub_run import run_foreground

__all__ = ["app"]

app = typer.Typer(help="Run the hub and manage daemons through it.", no_args_is_help=True)
app.command("install")(install_commands.hub_install)
app.command("uninstall")(install_commands.hub_uninstall)

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", help="postgresql://… for several instances, or sqlite:///…"),
]
PortOption = Annotated[
    int | None, typer.Option(min=0, max=65535, help=f"Port, 1-65535 (default {DEFAULT_PORT}).")
]
BindOption = Annotated[
    str | None,
    typer.Option(help="loopback, lan or an IP address (default: `listen` in hub.toml)."),
]
DbOption = Annotated[Path | None, typer.Option(help="Database file (default hub.db).")]
BusUrlOption = Annotated[
    str | None,
    typer.Option("--bus-url", help="NATS URL routing between instances (needs PostgreSQL)."),
]
LogFormatOption = Annotated[str, typer.Option("--log-format", help="text or json.")]


# -- hub run ---------------------------------------------------------------------------


@app.command("run")
def run(
    port: PortOption = None,
    bind: BindOption = None,
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    bus_url: BusUrlOption = None,
    config: ConfigOption = None,
    log_format: LogFormatOption = "text",
) -> None:
    """Run the hub in the foreground until SIGTERM or Ctrl-C."""
    os.umask(0o077)
    # `hub start` marks its child; the mark must not reach the hub's own children.
    detached = os.environ.pop(DETACHED_ENV, "") == "1"
    settings = _settings(config, db, port, database_url, bus_url, bind)
    run_foreground(settings, log_format, detached=detached)


def _settings(
    config: Path | None,
    db: Path | None,
    port: int | None,
    database_url: str | None,
    bus_url: str | None = None,
    bind: str | None = None,
) -> HubSettings:
    try:
        settings = load_settings(
            hub_config_path(config),
            db=db.absolute() if db else None,
            port=port,
            database_url=database_url,
            bus_url=bus_url,
        )
        if bind is not None:
            settings = dataclasses.replace(settings, host=bind_host(bind))
    except (HubSettingsError, ConfigError) as exc:
        fail(str(exc), 2)
    return settings


@app.command("migrate")
def migrate(
    db: Annotated[Path | None, typer.Option(help="Database file (default hub.db).")] = None,
    database_url: DatabaseUrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Apply the hub's schema steps to its database, then exit (hub run applies them too)."""
    os.umask(0o077)
    settings = _settings(config, db, None, database_url)
    from ..hub.repo_store import migrate_store
    from ..hub.store import HubLocked, HubStoreError

    try:
        version = asyncio.run(migrate_store(settings))
    except HubLocked as exc:
        fail(f"{exc} (a running single hub migrates its own file)", 3)
    except HubStoreError as exc:
        fail(str(exc), 2)
    console.print(f"hub schema at version {version}: {settings.database}")


# -- in the background ------------------------------------------------------------------


def _files(config: Path | None) -> DaemonFiles:
    return hub_files(hub_config_path(config).parent)


@app.command("start")
def start(
    port: PortOption = None,
    bind: BindOption = None,
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    bus_url: BusUrlOption = None,
    config: ConfigOption = None,
    log_format: LogFormatOption = "text",
) -> None:
    """Start the hub in the background and wait until it is ready."""
    os.umask(0o077)
    # Checked (and hub.toml made on first run) here, so a mistake is one line, not a log.
    settings = _settings(config, db, port, database_url, bus_url, bind)
    files = hub_files(settings.config_path.parent)
    pid = running_pid(files.pid_file)
    if pid is not None:
        fail(f"already running (pid {pid}); stop it with `clawgate hub stop`", 3)
    args = ["--config", str(settings.config_path), "--log-format", log_format]
    for flag, value in (("--port", port), ("--bind", bind), ("--db", db and db.absolute())):
        if value is not None:
            args += [flag, str(value)]
    # URLs may hold a password: they travel in the environment, never on a `ps` line.
    if database_url is not None:
        os.environ["CLAWGATE_HUB_DATABASE_URL"] = database_url
    if bus_url is not None:
        os.environ["CLAWGATE_HUB_BUS_URL"] = bus_url
    result = start_detached(files, args)
    if not result.ok or result.state is None:
        # Exit 3 from the child means another hub holds the lock or the database.
        fail(f"hub did not start: {result.detail}", 3 if result.exit_code == 3 else 1)
    state = result.state
    link = state.url.replace("http://", "ws://", 1) + "/v1/daemon"
    print(
        f"clawgate hub started (pid {state.pid}) on {state.url}\n"
        f"  daemons: cloud.url = {link}\n"
        f"  admin token: in {settings.config_path}\n"
        f"  logs: {files.log_file}"
    )


@app.command("stop")
def stop(config: ConfigOption = None) -> None:
    """Stop the background hub: SIGTERM, then SIGKILL if it does not drain in time."""
    stop_and_say(_files(config))


@app.command("restart")
def restart(
    port: PortOption = None,
    bind: BindOption = None,
    db: DbOption = None,
    database_url: DatabaseUrlOption = None,
    bus_url: BusUrlOption = None,
    config: ConfigOption = None,
    log_format: LogFormatOption = "text",
) -> None:
    """Stop the hub if `hub start` started it, then start it in the background."""
    files = _files(config)
    refuse_foreign_restart(files)
    stop_and_say(files)
    start(port, bind, db, database_url, bus_url, config, log_format)


@app.command("status")
def status(json_output: JsonOption = False, config: ConfigOption = None) -> None:
    """Show whether the hub runs: pid, address, uptime and connected daemons."""
    files = _files(config)
    report: dict[str, Any] = {
        "running": False,
        "config": str(hub_config_path(config)),
        "logFile": str(files.log_file),
    }
    try:
        state = find_running(files.run_state, kind="hub", where=str(files.run_state.parent))
    except NotRunning as exc:
        report["reason"] = str(exc)
        state = None
    if state is not None:
        report.update(
            running=True,
            pid=state.pid,
            url=state.url,
            linkUrl=state.url.replace("http://", "ws://", 1) + "/v1/daemon",
            bootId=state.boot_id,
            uptimeS=max(0, int(time.time() - state.started_ms / 1000)),
            detached=state.detached,
            daemons=_daemon_counts(state.http_url, hub_config_path(config)),
        )
    if json_output:
        print_json(report, compact=True)
    elif state is None:
        console.print("clawgate hub is not running; start it with `clawgate hub start`")
    else:
        daemons = report["daemons"]
        counted = "unknown (no admin token)"
        if daemons is not None:
            counted = f"{daemons['connected']} connected of {daemons['total']}"
        how = "`clawgate hub start`" if state.detached else "foreground or a service manager"
        print(
            f"clawgate hub running (pid {state.pid}, {how}) on {state.url}\n"
            f"  up {report['uptimeS']} s, boot id {state.boot_id}\n"
            f"  daemons: {counted}; they connect to {report['linkUrl']}\n"
            f"  logs: {files.log_file}"
        )
    if state is None:
        raise typer.Exit(1)


def _daemon_counts(http_url: str, config_path: Path) -> dict[str, int] | None:
    """Return connected/total daemons, or None when this home has no admin token."""
    try:
        data = read_settings_file(config_path)
    except HubSettingsError:
        return None
    token = os.environ.get(ENV_ADMIN_TOKEN) or data.get("admin_token")
    if not isinstance(token, str) or not token:
        return None
    request = urllib.request.Request(http_url + "/v1/daemons")
    request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            daemons = orjson.loads(response.read())["daemons"]
    except (OSError, ValueError, KeyError):
        return None
    return {"connected": sum(1 for d in daemons if d["connected"]), "total": len(daemons)}


@app.command("logs")
def logs(
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines to show.")] = 50,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Print the hub's log, optionally following it across rotations."""
    show_logs(_files(config), lines, follow)


# -- the operator commands, over HTTP ------------------------------------------------------

# Typer lists a group's commands in the order they were added: these come after the above.
app.command("daemons")(hub_daemons.daemons)
app.command("daemon")(hub_daemons.daemon)
app.command("reports")(hub_daemons.reports)
app.add_typer(hub_daemons.desired_app, name="desired")
app.add_typer(hub_keys.app, name="keys")
app.add_typer(hub_commands.app, name="command")
