"""`clawgate hub command …`: send a command to a daemon through the hub, show one, list them."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Final

import orjson
import typer
from typer.core import TyperGroup

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


app = typer.Typer(
    cls=_SendUnlessNamed,
    help="Send a command to a daemon (`hub command DAEMON NAME` = `send`), show one, list them.",
    no_args_is_help=True,
)

#: Exit code when `--wait` ran out before the command ended (as `timeout(1)` does).
EXIT_STILL_RUNNING: Final = 124
#: The most commands one listing returns (the hub's `?limit=` bound).
MAX_LISTED: Final = 200
_HTTP_SLACK_S: Final = 10.0


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


@app.command("send")
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
    hub = HubClient(url, config)
    daemon_id = resolve_daemon_id(hub, daemon_id, new_ok=True)
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


def _command_id(hub: HubClient, given: str) -> str:
    """Accept a full command id, or a unique prefix among the commands of every daemon."""
    status, _ = hub.request("GET", f"/v1/commands/{given}")
    if status == 200:
        return given
    ids: list[str] = []
    for d in hub.call("GET", "/v1/daemons")["daemons"]:
        listed = hub.call("GET", f"/v1/daemons/{d['daemonId']}/commands?limit={MAX_LISTED}")
        ids += [c["commandId"] for c in listed["commands"]]
    return pick_id(given, ids, what="command", listing="clawgate hub command list DAEMON")


@app.command("get")
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
    hub = HubClient(url, config)
    command_id = _command_id(hub, command_id)
    record = hub.call(
        "GET", f"/v1/commands/{command_id}?wait={wait:g}", timeout=wait + _HTTP_SLACK_S
    )
    _show_outcome(record, wait, json_output)


@app.command("list")
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

    listed = daemon_listing(daemon_id, "commands", limit, json_output, url, config)
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
            c["commandId"], escape(c["name"]), c["issuedAt"], c["state"], cell(c["updatedAt"])
        )
    console.print(table)
    console.print("show one with: clawgate hub command get ID")
