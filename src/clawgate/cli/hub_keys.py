"""`clawgate hub keys …`: issue, list and revoke the API keys daemons link to the hub with."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import console, print_json
from .hub_client import ConfigOption, HubClient, JsonOption, UrlOption, cell
from .ids import pick_id

__all__ = ["app"]

app = typer.Typer(help="Issue, list and revoke daemon API keys.", no_args_is_help=True)


def _key_id(hub: HubClient, given: str) -> str:
    """Accept a full key id or a unique prefix of one (one list call)."""
    ids = [k["keyId"] for k in hub.call("GET", "/v1/keys")["keys"]]
    return pick_id(given, ids, what="key", listing="clawgate hub keys list")


@app.command("create")
def keys_create(
    label: Annotated[str, typer.Option(help="A note saying which machine it is for.")] = "",
    json_output: JsonOption = False,
    url: UrlOption = None,
    config: ConfigOption = None,
) -> None:
    """Issue a daemon API key; it is shown once, so store it now."""
    created = HubClient(url, config).call("POST", "/v1/keys", {"label": label})
    if json_output:
        print_json(created, compact=True)
        return
    console.print(f"key id: {created['keyId']}")
    # Printed plainly (no markup) so that it can be copied exactly.
    print(created["key"])
    console.print("shown once: put it in the daemon's config (auth.api_key) or CLAWGATE_API_KEY")


@app.command("list")
def keys_list(
    json_output: JsonOption = False, url: UrlOption = None, config: ConfigOption = None
) -> None:
    """List daemon keys (ids and labels; the keys themselves are never stored)."""
    from rich.markup import escape
    from rich.table import Table

    data = HubClient(url, config).call("GET", "/v1/keys")
    if json_output:
        print_json(data, compact=True)
        return
    table = Table(title="daemon keys")
    for column in ("key id", "label", "created", "revoked"):
        table.add_column(column)
    for k in data["keys"]:
        table.add_row(k["keyId"], escape(k["label"]) or "-", k["createdAt"], cell(k["revokedAt"]))
    console.print(table)


@app.command("revoke")
def keys_revoke(key_id: str, url: UrlOption = None, config: ConfigOption = None) -> None:
    """Revoke a daemon key; daemons using it are disconnected (4401)."""
    hub = HubClient(url, config)
    record = hub.call("DELETE", f"/v1/keys/{_key_id(hub, key_id)}")
    console.print(f"revoked {record['keyId']} at {record['revokedAt']}")
