"""What the `clawgate hub` commands share: hub.toml, and the client of a running hub's API."""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from ..hub.settings import (
    ENV_ADMIN_TOKEN,
    HubSettingsError,
    default_config_path,
    read_settings_file,
)
from ..service.paths import HomeError, resolve_home
from ..service.runstate import HUB_STATE_NAME, NotRunning, find_running
from ._common import EXIT_FAILED, EXIT_USAGE, fail, print_json, unreachable_message
from .ids import pick_id

__all__ = [
    "ConfigOption",
    "HubClient",
    "JsonOption",
    "UrlOption",
    "cell",
    "daemon_listing",
    "hub_config_path",
    "resolve_daemon_id",
]

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="hub.toml (default $CLAWGATE_HOME/hub.toml).")
]
UrlOption = Annotated[
    str | None, typer.Option("--url", help="Hub base URL (default from hub.toml).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def hub_config_path(config: Path | None) -> Path:
    """Return the hub.toml `--config` names, else the one in $CLAWGATE_HOME."""
    if config is not None:
        return config.expanduser().absolute()
    try:
        return default_config_path(resolve_home())
    except HomeError as exc:
        fail(str(exc), 2)


class HubClient:
    """A tiny synchronous client of the operator API."""

    def __init__(self, url: str | None, config: Path | None) -> None:
        path = hub_config_path(config)
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
        """Return the hub's answer; exit 1 with its error message when it refuses."""
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
        """Return the status and decoded body; exit 2 when the hub cannot be reached."""
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


def resolve_daemon_id(hub: HubClient, given: str, *, new_ok: bool = False) -> str:
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


def daemon_listing(
    daemon_id: str,
    what: str,
    limit: int,
    json_output: bool,
    url: str | None,
    config: Path | None,
) -> tuple[str, dict[str, Any]] | None:
    """Fetch a daemon's latest `what` (reports, commands); with --json print them, return None."""
    hub = HubClient(url, config)
    daemon_id = resolve_daemon_id(hub, daemon_id)
    data = hub.call("GET", f"/v1/daemons/{daemon_id}/{what}?limit={limit}")
    if json_output:
        print_json(data, compact=True)
        return None
    return daemon_id, data


def cell(value: Any) -> str:
    """Return a table cell: `-` for a missing value, else the value with markup escaped."""
    from rich.markup import escape

    return "-" if value is None else escape(str(value))
