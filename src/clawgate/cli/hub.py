"""`clawgate hub …`: run the self-hostable hub and drive its operator API over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any, Final

import orjson
import typer
from typer.core import TyperGroup

from ..config import ConfigError, bind_host, is_loopback_host
from ..files import AlreadyRunning, PidLock, running_pid
from ..hub.settings import (
    DEFAULT_PORT,
    ENV_ADMIN_TOKEN,
    HubSettings,
    HubSettingsError,
    default_config_path,
    load_settings,
    read_settings_file,
)
from ..service.daemon import DETACHED_ENV, DaemonFiles, hub_files, start_detached
from ..service.logs import setup_logging
from ..service.paths import HomeError, resolve_home
from ..service.runstate import (
    HUB_STATE_NAME,
    NotRunning,
    RunState,
    clear_run_state,
    find_running,
    write_run_state,
)
from . import install as install_commands
from ._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    console,
    fail,
    install_uvloop,
    print_json,
    unreachable_message,
)
from .daemon_ops import refuse_foreign_restart, show_logs, stop_and_say
from .ids import pick_id

__all__ = ["app"]


class _SendUnlessNamed(TyperGroup):
    """`hub command DAEMON NAME` stays short for `hub command send DAEMON NAME`."""

    # Typer bundles its own click: the context and command types are left as Any here.
    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        """Route arguments that name no subcommand (nor an option) to `send`."""
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["send", *args]
        return super().resolve_command(ctx, args)


app = typer.Typer(help="Run the hub and manage daemons through it.", no_args_is_help=True)
desired_app = typer.Typer(help="Read and write a daemon's desired state.", no_args_is_help=True)
keys_app = typer.Typer(help="Issue, list and revoke daemon API keys.", no_args_is_help=True)
command_app = typer.Typer(
    cls=_SendUnlessNamed,
    help="Send a command to a daemon (`hub command DAEMON NAME` = `send`), show one, list them.",
    no_args_is_help=True,
)
app.add_typer(desired_app, name="desired")
app.add_typer(keys_app, name="keys")
app.add_typer(command_app, name="command")
app.command("install")(install_commands.hub_install)
app.command("uninstall")(install_commands.hub_uninstall)

#: Exit code when `--wait` ran out before the command ended (as `timeout(1)` does).
EXIT_STILL_RUNNING: Final = 124
#: The most commands one listing returns (the hub's `?limit=` bound).
MAX_LISTED: Final = 200
_HTTP_SLACK_S: Final = 10.0

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="hub.toml (default $CLAWGATE_HOME/hub.toml).")
]
UrlOption = Annotated[
    str | None, typer.Option("--url", help="Hub base URL (default from hub.toml).")
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", help="postgresql://… for several instances, or sqlite:///…"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
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


def _config_path(config: Path | None) -> Path:
    if config is not None:
        return config.expanduser().absolute()
    try:
        return default_config_path(resolve_home())
    except HomeError as exc:
        fail(str(exc), 2)


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
            _config_path(config),
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


async def _serve(settings: HubSettings, files: DaemonFiles, *, detached: bool) -> None:
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


# -- in the background ------------------------------------------------------------------


def _files(config: Path | None) -> DaemonFiles:
    return hub_files(_config_path(config).parent)


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
        "config": str(_config_path(config)),
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
            daemons=_daemon_counts(state.http_url, _config_path(config)),
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


# -- the HTTP client ---------------------------------------------------------------------


class _Hub:
    """A tiny synchronous client of the operator API."""

    def __init__(self, url: str | None, config: Path | None) -> None:
        path = _config_path(config)
        try:
            data = read_settings_file(path)
        except HubSettingsError as exc:
            fail(str(exc), 2)
        token = os.environ.get(ENV_ADMIN_TOKEN) or data.get("admin_token")
        if not isinstance(token, str) or not token:
            fail(f"no admin token: set {ENV_ADMIN_TOKEN} or run `clawgate hub run` once", 2)
        self.token = token
        if url is None:
            # The hub this home runs, once it proved itself: the admin token never goes to
            # whatever else listens on the configured port.
            try:
                url = find_running(path.parent / HUB_STATE_NAME, kind="hub").http_url
            except NotRunning as exc:
                fail(f"{exc} (`clawgate hub run`)", 2)
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, body: Any = None, *, timeout: float = 30) -> Any:
        status, data = self.request(method, path, body, timeout=timeout)
        if status >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            message = error.get("message", f"HTTP {status}")
            for issue in (data.get("errors") or [])[:20] if isinstance(data, dict) else []:
                message += f"\n  {issue['path'] or '(body)'}: {issue['message']}"
            fail(message, EXIT_FAILED, error=error.get("code") if isinstance(error, dict) else None)
        return data

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float = 30
    ) -> tuple[int, Any]:
        data = None if body is None else orjson.dumps(body)
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, orjson.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                return exc.code, orjson.loads(payload)
            except orjson.JSONDecodeError:
                return exc.code, {"error": {"message": f"HTTP {exc.code} from {self.url}"}}
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            cause = reason if isinstance(reason, BaseException) else exc
            message = unreachable_message(
                self.url, cause, what="the hub", start="clawgate hub start"
            )
            fail(message, EXIT_USAGE, error="UNREACHABLE")


def _daemon_id(hub: _Hub, given: str, *, new_ok: bool = False) -> str:
    """Accept a full daemon id or a unique prefix of one (one list call).

    With `new_ok` an id no known daemon starts with is used as given: desired state and
    commands may wait on the hub for a daemon that has not connected yet.
    """
    listing = hub.call("GET", "/v1/daemons")
    ids = [d["daemonId"] for d in listing["daemons"]]
    if new_ok and given not in ids and not any(i.lower().startswith(given.lower()) for i in ids):
        return given
    resolved = pick_id(given, ids, what="daemon", listing="clawgate hub daemons")
    if resolved != given:
        print(f"daemon {resolved}", file=sys.stderr)
    return resolved


def _key_id(hub: _Hub, given: str) -> str:
    """Accept a full key id or a unique prefix of one (one list call)."""
    ids = [k["keyId"] for k in hub.call("GET", "/v1/keys")["keys"]]
    return pick_id(given, ids, what="key", listing="clawgate hub keys list")


def _show(value: Any) -> str:
    from rich.markup import escape

    return "-" if value is None else escape(str(value))


# -- daemons -------------------------------------------------------------------------------


@app.command("daemons")
def daemons(
    json_output: JsonOption = False, url: UrlOption = None, config: ConfigOption = None
) -> None:
    """List daemons with link state, revisions and convergence."""
    from rich.markup import escape
    from rich.table import Table

    listing = _Hub(url, config).call("GET", "/v1/daemons")
    if json_output:
        print_json(listing, compact=True)
        return
    if not listing["daemons"]:
        console.print("no daemons yet; give one a key from `clawgate hub keys create`")
        return
    table = Table(title="daemons")
    for column in ("daemon", "host", "link", "last seen", "desired", "applied", "converged"):
        table.add_column(column)
    for d in listing["daemons"]:
        table.add_row(
            escape(d["daemonId"]),
            _show(d["hostname"]),
            "connected" if d["connected"] else "offline",
            _show(d["lastSeenAt"]),
            str(d["desiredRevision"]),
            str(d["lastAppliedRevision"]),
            _show(d["converged"]),
        )
    console.print(table)


@app.command("daemon")
def daemon(
    daemon_id: str,
    json_output: JsonOption = False,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Show one daemon with its plugins and last report."""
    hub = _Hub(url, config)
    record = hub.call("GET", f"/v1/daemons/{_daemon_id(hub, daemon_id)}")
    if json_output:
        print_json(record, compact=True)
        return
    print_json(record, compact=False)


def _daemon_listing(
    daemon_id: str,
    what: str,
    limit: int,
    json_output: bool,
    url: str | None,
    config: Path | None,
) -> tuple[str, dict[str, Any]] | None:
    """Fetch a daemon's latest `what` (reports, commands); with --json print them, return None."""
    hub = _Hub(url, config)
    daemon_id = _daemon_id(hub, daemon_id)
    data = hub.call("GET", f"/v1/daemons/{daemon_id}/{what}?limit={limit}")
    if json_output:
        print_json(data, compact=True)
        return None
    return daemon_id, data


@app.command("reports")
def reports(
    daemon_id: str,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    json_output: JsonOption = False,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Show a daemon's recent reconciliation reports."""
    from rich.markup import escape
    from rich.table import Table

    listed = _daemon_listing(daemon_id, "reports", limit, json_output, url, config)
    if listed is None:
        return
    daemon_id, data = listed
    table = Table(title=f"reports of {escape(daemon_id)}")
    for column in ("received", "revision", "trigger", "converged", "drift", "integrations"):
        table.add_column(column)
    for r in data["reports"]:
        states = ", ".join(f"{i['id']}={i['status']}" for i in r["integrations"]) or "-"
        table.add_row(
            _show(r.get("receivedAt")),
            str(r["revision"]),
            r["trigger"],
            str(r["converged"]),
            str(r["drift"]),
            escape(states),
        )
    console.print(table)


# -- desired state -----------------------------------------------------------------------


@desired_app.command("get")
def desired_get(daemon_id: str, url: UrlOption = None, config: ConfigOption = None) -> None:
    """Print a daemon's desired state (secret names only) as JSON."""
    hub = _Hub(url, config)
    daemon_id = _daemon_id(hub, daemon_id, new_ok=True)
    desired = hub.call("GET", f"/v1/daemons/{daemon_id}/desired-state")
    print_json(desired, compact=False)


def _read_desired_file(path: Path) -> dict[str, Any]:
    """Read FILE as `clawgate integrations apply` does (docs/desired-state.md)."""
    from ..integrations.desired_file import DesiredFileError, load_desired_file

    try:
        return {"integrations": load_desired_file(path, os.environ)}
    except DesiredFileError as exc:
        fail(f"{exc}; fix it and retry", 2)


@desired_app.command("set")
def desired_set(
    daemon_id: str,
    file: Annotated[
        Path,
        typer.Argument(help="TOML (as `integrations apply` takes) or .json with `integrations`."),
    ],
    if_revision: Annotated[
        int | None, typer.Option("--if-revision", help="Refuse unless at this revision.")
    ] = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Replace a daemon's desired state with the integrations in FILE.

    FILE is the file `clawgate integrations apply` takes: TOML (any name but *.json) or JSON,
    manifests inline or as paths relative to FILE, secret values from `secrets_env`.
    """
    from rich.markup import escape

    body = _read_desired_file(file)
    if if_revision is not None:
        body["ifRevision"] = if_revision
    hub = _Hub(url, config)
    daemon_id = _daemon_id(hub, daemon_id, new_ok=True)
    result = hub.call("PUT", f"/v1/daemons/{daemon_id}/desired-state", body)
    if json_output:
        print_json(result, compact=True)
    else:
        console.print(f"desired state of {escape(daemon_id)} is now revision {result['revision']}")


# -- commands ------------------------------------------------------------------------------


def _target(text: str) -> dict[str, str]:
    kind, sep, value = text.partition("=")
    names = {"capability": "capability", "integration": "integrationId", "plugin": "plugin"}
    if not sep or kind not in names or not value:
        fail("--target must be capability=NAME, integration=ID or plugin=NAME", 2)
    return {names[kind]: value}


def _json_object(text: str | None, option: str) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        fail(f'{option} must be a JSON object, e.g. \'{{"key": "value"}}\'', 2)
    if not isinstance(value, dict):
        fail(f'{option} must be a JSON object, e.g. \'{{"key": "value"}}\'', 2)
    return value


@command_app.command("send")
def command_send(
    daemon_id: str,
    name: str,
    target: Annotated[
        str, typer.Option(help="capability=x, integration=y or plugin=z.")
    ] = "capability=integrations",
    params: Annotated[str | None, typer.Option(help="Parameters as a JSON object.")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the outcome (≤ 60).")] = 0,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Send a command to a daemon; with --wait, print its outcome."""

    body: dict[str, Any] = {
        "name": name,
        "target": _target(target),
        "params": _json_object(params, "--params"),
    }
    if idempotency_key is not None:
        body["idempotencyKey"] = idempotency_key
    hub = _Hub(url, config)
    daemon_id = _daemon_id(hub, daemon_id, new_ok=True)
    record = hub.call(
        "POST",
        f"/v1/daemons/{daemon_id}/commands?wait={wait:g}",
        body,
        timeout=wait + _HTTP_SLACK_S,
    )
    _show_outcome(record, wait, json_output)


def _show_outcome(record: dict[str, Any], wait: float, json_output: bool) -> None:
    """Print a command's state and outcome; exit 1 when it failed, 124 when `wait` ran out."""
    from rich.markup import escape

    if json_output:
        print_json(record, compact=True)
    else:
        console.print(
            f"command {record['commandId']} ({escape(record['name'])} on "
            f"{escape(record['daemonId'])}): {record['state']}"
        )
        if record.get("result") is not None:
            print_json(record["result"], compact=False)
        if record.get("error"):
            console.print(
                f"error {escape(str(record['error'].get('code')))}: "
                f"{escape(str(record['error'].get('message')))}"
            )
    if not record["terminal"]:
        if wait > 0:
            print(f"still {record['state']} after {wait:g} s", file=sys.stderr)
        raise typer.Exit(EXIT_STILL_RUNNING if wait > 0 else 0)
    if record["state"] != "done":
        raise typer.Exit(1)


def _command_id(hub: _Hub, given: str) -> str:
    """Accept a full command id, or a unique prefix among the commands of every daemon."""
    status, _ = hub.request("GET", f"/v1/commands/{given}")
    if status == 200:
        return given
    ids: list[str] = []
    for d in hub.call("GET", "/v1/daemons")["daemons"]:
        listed = hub.call("GET", f"/v1/daemons/{d['daemonId']}/commands?limit={MAX_LISTED}")
        ids += [c["commandId"] for c in listed["commands"]]
    return pick_id(given, ids, what="command", listing="clawgate hub command list DAEMON")


@command_app.command("get")
def command_get(
    command_id: Annotated[str, typer.Argument(help="A command id or a unique prefix of one.")],
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the outcome (≤ 60).", min=0, max=60)
    ] = 0,
    json_output: JsonOption = False,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Show a command's state and outcome; with --wait, wait for the outcome first."""
    hub = _Hub(url, config)
    command_id = _command_id(hub, command_id)
    record = hub.call(
        "GET", f"/v1/commands/{command_id}?wait={wait:g}", timeout=wait + _HTTP_SLACK_S
    )
    _show_outcome(record, wait, json_output)


@command_app.command("list")
def command_list(
    daemon_id: str,
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1, max=200)] = 20,
    json_output: JsonOption = False,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """List a daemon's recent commands, newest first."""
    from rich.markup import escape
    from rich.table import Table

    listed = _daemon_listing(daemon_id, "commands", limit, json_output, url, config)
    if listed is None:
        return
    daemon_id, data = listed
    if not data["commands"]:
        console.print(
            f"no commands for {escape(daemon_id)}; send one with "
            f"`clawgate hub command {escape(daemon_id)} NAME`"
        )
        return
    table = Table(title=f"commands of {escape(daemon_id)}")
    for column in ("command", "name", "issued", "state", "updated"):
        table.add_column(column, no_wrap=column == "command")
    for c in data["commands"]:
        table.add_row(
            c["commandId"], escape(c["name"]), c["issuedAt"], c["state"], _show(c["updatedAt"])
        )
    console.print(table)
    console.print("show one with: clawgate hub command get ID")


# -- keys ----------------------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    label: Annotated[str, typer.Option(help="A note saying which machine it is for.")] = "",
    json_output: JsonOption = False,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Issue a daemon API key; it is shown once, so store it now."""
    created = _Hub(url, config).call("POST", "/v1/keys", {"label": label})
    if json_output:
        print_json(created, compact=True)
        return
    console.print(f"key id: {created['keyId']}")
    # Printed plainly (no markup) so that it can be copied exactly.
    print(created["key"])
    console.print("shown once: put it in the daemon's config (auth.api_key) or CLAWGATE_API_KEY")


@keys_app.command("list")
def keys_list(
    json_output: JsonOption = False, url: UrlOption = None, config: ConfigOption = None
) -> None:
    """List daemon keys (ids and labels; the keys themselves are never stored)."""
    from rich.markup import escape
    from rich.table import Table

    data = _Hub(url, config).call("GET", "/v1/keys")
    if json_output:
        print_json(data, compact=True)
        return
    table = Table(title="daemon keys")
    for column in ("key id", "label", "created", "revoked"):
        table.add_column(column)
    for k in data["keys"]:
        table.add_row(k["keyId"], escape(k["label"]) or "-", k["createdAt"], _show(k["revokedAt"]))
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, url: UrlOption = None, config: ConfigOption = None) -> None:
    """Revoke a daemon key; daemons using it are disconnected (4401)."""
    hub = _Hub(url, config)
    record = hub.call("DELETE", f"/v1/keys/{_key_id(hub, key_id)}")
    console.print(f"revoked {record['keyId']} at {record['revokedAt']}")
