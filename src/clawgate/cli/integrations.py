"""`clawgate integrations` and `clawgate manifest`: desired integrations and their status."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..integrations import ManifestError, load_manifest_file
from ..integrations.desired_file import DesiredFileError, load_desired_file
from ._common import console, fail, print_json
from .call import JsonOption, TokenOption, UrlOption, with_client

if TYPE_CHECKING:
    from ..client import GatewayClient

__all__ = ["app", "manifest_app"]

app = typer.Typer(help="Desired integrations and how far they have converged.")
manifest_app = typer.Typer(
    help="Integration manifests (clawgate-integration.toml).", no_args_is_help=True
)

FileArgument = Annotated[Path, typer.Argument(help="A TOML or JSON file listing `integrations`.")]


@app.callback(invoke_without_command=True)
def integrations(
    ctx: typer.Context,
    json_output: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """List integrations: status, versions, owner, attempts and the last error."""
    if ctx.invoked_subcommand is not None:
        return

    async def ask(client: GatewayClient) -> dict[str, Any]:
        result: dict[str, Any] = await client.call("integrations.list")
        live = {p["name"] for p in (await client.call("plugins.list"))["plugins"]}
        # Asked in the same breath: an owner that left shows offline now, not after a pass.
        for row in result["integrations"]:
            row["ownerConnected"] = row.get("owner") in live if row.get("owner") else None
        return result

    result = with_client(url, token, ask)
    if json_output:
        print_json(result, compact=True)
        return
    _print_integrations(result)


@app.command("apply")
def apply(
    file: FileArgument,
    if_revision: Annotated[
        int | None, typer.Option(help="Refuse unless the daemon is at this revision.")
    ] = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Make FILE the desired set of integrations (machines without a hub)."""
    try:
        entries = load_desired_file(file, os.environ)
    except DesiredFileError as exc:
        fail(str(exc))
    params: dict[str, Any] = {"integrations": entries}
    if if_revision is not None:
        params["ifRevision"] = if_revision
    result = with_client(url, token, lambda client: client.call("integrations.apply", params))
    if json_output:
        print_json(result, compact=True)
        return
    change = "applied" if result["changed"] else "unchanged"
    console.print(f"revision {result['revision']}: {change}; see `clawgate integrations`")


@manifest_app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="clawgate-integration.toml or .yaml")],
) -> None:
    """Check a manifest and print every broken rule; exit 1 if there is any."""
    from rich.markup import escape

    try:
        manifest = load_manifest_file(file)
    except ManifestError as exc:
        for issue in exc.errors:
            console.print(f"{escape(issue['path'] or '(manifest)')}: {escape(issue['message'])}")
        raise typer.Exit(1) from None
    except OSError as exc:
        fail(f"{file}: cannot read it ({exc.strerror})")
    console.print(f"{escape(manifest.id)} {escape(manifest.version)}: valid")


def _owner(row: dict[str, Any]) -> str:
    from rich.markup import escape

    owner = row.get("owner")
    if not owner:
        return "-"
    return escape(owner) if row.get("ownerConnected") is not False else f"{escape(owner)} (offline)"


def _print_integrations(result: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    rows = result["integrations"]
    state = "converged" if result["converged"] else "converging"
    revision, applied = result["revision"], result["appliedRevision"]
    title = f"integrations (revision {revision}, applied {applied}, {state})"
    if not rows:
        console.print(f"{title}: none")
        return
    table = Table(title=title)
    for column in ("id", "status", "version", "desired", "owner", "attempts", "error"):
        table.add_column(column)
    for row in rows:
        error = row.get("error")
        table.add_row(
            row["id"],
            row["status"],
            escape(row.get("version") or "-"),
            escape(row.get("desiredVersion") or "-"),
            _owner(row),
            str(row["attempts"]),
            escape(f"{error['code']}: {error['message']}") if error else "",
        )
    console.print(table)
