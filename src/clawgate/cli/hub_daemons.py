"""`clawgate hub daemons|daemon|reports|desired`: the daemons a hub knows and their state."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import console, fail, print_json
from .hub_client import (
    ConfigOption,
    HubClient,
    JsonOption,
    UrlOption,
    cell,
    daemon_listing,
    resolve_daemon_id,
)

__all__ = ["daemon", "daemons", "desired_app", "reports"]

desired_app = typer.Typer(help="Read and write a daemon's desired state.", no_args_is_help=True)


# `daemons`, `daemon` and `reports` are commands of the `hub` group itself: cli/hub.py adds
# them after its service commands, which keeps the order `clawgate hub --help` lists.


def daemons(
    json_output: JsonOption = False, url: UrlOption = None, config: ConfigOption = None
) -> None:
    """List daemons with link state, revisions and convergence."""
    from rich.markup import escape
    from rich.table import Table

    listing = HubClient(url, config).call("GET", "/v1/daemons")
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
            cell(d["hostname"]),
            "connected" if d["connected"] else "offline",
            cell(d["lastSeenAt"]),
            str(d["desiredRevision"]),
            str(d["lastAppliedRevision"]),
            cell(d["converged"]),
        )
    console.print(table)


def daemon(
    daemon_id: str,
    json_output: JsonOption = False,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Show one daemon with its plugins and last report."""
    hub = HubClient(url, config)
    record = hub.call("GET", f"/v1/daemons/{resolve_daemon_id(hub, daemon_id)}")
    if json_output:
        print_json(record, compact=True)
        return
    print_json(record, compact=False)


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

    listed = daemon_listing(daemon_id, "reports", limit, json_output, url, config)
    if listed is None:
        return
    daemon_id, data = listed
    table = Table(title=f"reports of {escape(daemon_id)}")
    for column in ("received", "revision", "trigger", "converged", "drift", "integrations"):
        table.add_column(column)
    for r in data["reports"]:
        states = ", ".join(f"{i['id']}={i['status']}" for i in r["integrations"]) or "-"
        table.add_row(
            cell(r.get("receivedAt")),
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
    hub = HubClient(url, config)
    daemon_id = resolve_daemon_id(hub, daemon_id, new_ok=True)
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
    hub = HubClient(url, config)
    daemon_id = resolve_daemon_id(hub, daemon_id, new_ok=True)
    result = hub.call("PUT", f"/v1/daemons/{daemon_id}/desired-state", body)
    if json_output:
        print_json(result, compact=True)
    else:
        console.print(f"desired state of {escape(daemon_id)} is now revision {result['revision']}")
