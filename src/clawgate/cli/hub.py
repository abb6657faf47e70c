"""`clawgate hub …`: run the self-hostable hub and drive its operator API over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any, Final

import orjson
import typer

from ..hub.settings import (
    DEFAULT_PORT,
    ENV_ADMIN_TOKEN,
    HubSettings,
    HubSettingsError,
    default_config_path,
    load_settings,
    read_settings_file,
)
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
from ._common import console, fail, install_uvloop, print_json
from .ids import pick_id

__all__ = ["app"]

app = typer.Typer(help="Run the hub and manage daemons through it.", no_args_is_help=True)
desired_app = typer.Typer(help="Read and write a daemon's desired state.", no_args_is_help=True)
keys_app = typer.Typer(help="Issue, list and revoke daemon API keys.", no_args_is_help=True)
app.add_typer(desired_app, name="desired")
app.add_typer(keys_app, name="keys")

#: Exit code when `--wait` ran out before the command ended (as `timeout(1)` does).
EXIT_STILL_RUNNING: Final = 124
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
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help=f"Port, 1-65535 (default {DEFAULT_PORT}).")
    ] = None,
    db: Annotated[Path | None, typer.Option(help="Database file (default hub.db).")] = None,
    database_url: DatabaseUrlOption = None,
    bus_url: Annotated[
        str | None,
        typer.Option("--bus-url", help="NATS URL routing between instances (needs PostgreSQL)."),
    ] = None,
    config: ConfigOption = None,
    log_format: Annotated[str, typer.Option("--log-format", help="text or json.")] = "text",
) -> None:
    """Run the hub in the foreground until SIGTERM or Ctrl-C."""
    os.umask(0o077)
    settings = _settings(config, db, port, database_url, bus_url)
    setup_logging("info", log_format)
    from ..hub.store import HubLocked, HubStoreError  # the server side loads only here

    install_uvloop()
    try:
        asyncio.run(_serve(settings))
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
) -> HubSettings:
    try:
        return load_settings(
            _config_path(config),
            db=db.absolute() if db else None,
            port=port,
            database_url=database_url,
            bus_url=bus_url,
        )
    except HubSettingsError as exc:
        fail(str(exc), 2)


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


async def _serve(settings: HubSettings) -> None:
    from ..hub.server import HubServer

    server = HubServer(settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    state_path = settings.config_path.parent / HUB_STATE_NAME
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
        ),
    )
    origin = "generated and stored in" if settings.generated else "in"
    print(
        f"clawgate hub {server.url} (pid {os.getpid()})\n"
        f"  daemons: cloud.url = {server.link_url}\n"
        f"  admin token: {origin} {settings.config_path}\n"
        f"  database: {settings.database}\n"
        f"  bus: {'NATS' if settings.bus_url else 'in process'}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        clear_run_state(state_path, server.boot_id)
        await server.stop()


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
            fail(message, 1)
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
            reason = getattr(exc, "reason", exc)
            fail(f"no hub answers at {self.url} ({reason}); start one with `clawgate hub run`", 1)


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

    hub = _Hub(url, config)
    daemon_id = _daemon_id(hub, daemon_id)
    data = hub.call("GET", f"/v1/daemons/{daemon_id}/reports?limit={limit}")
    if json_output:
        print_json(data, compact=True)
        return
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
    try:
        raw = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", 2)
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else orjson.loads(raw)
    except (tomllib.TOMLDecodeError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        fail(f"{path} is not valid {kind} ({exc}); fix it and retry", 2)
    if not isinstance(data, dict) or "integrations" not in data:
        fail(f"{path} must hold an object with an `integrations` list", 2)
    return data


@desired_app.command("set")
def desired_set(
    daemon_id: str,
    file: Annotated[Path, typer.Argument(help="JSON or TOML file with `integrations`.")],
    if_revision: Annotated[
        int | None, typer.Option("--if-revision", help="Refuse unless at this revision.")
    ] = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Replace a daemon's desired state with the integrations in FILE."""
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


@app.command("command")
def command(
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
    from rich.markup import escape

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
    if json_output:
        print_json(record, compact=True)
    else:
        console.print(f"command {record['commandId']}: {record['state']}")
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
