"""`clawgate plugins` and `clawgate queue`: what runs on the plugin socket and what waits."""

from __future__ import annotations

from ._common import console, print_json
from .call import JsonOption, TokenOption, UrlOption, with_client

__all__ = ["plugins", "queue"]


def plugins(
    json_output: JsonOption = False, url: UrlOption = None, token: TokenOption = None
) -> None:
    """List the plugins registered on the gateway's IPC socket."""
    from rich.markup import escape
    from rich.table import Table

    result = with_client(url, token, lambda client: client.call("plugins.list"))
    if json_output:
        print_json(result, compact=True)
        return
    if not result["plugins"]:
        console.print("no plugins registered")
        return
    table = Table(title="plugins")
    for column in ("name", "version", "capabilities", "connected"):
        table.add_column(column)
    for plugin in result["plugins"]:
        table.add_row(
            plugin["name"],
            escape(plugin["version"]),  # whatever the plugin said
            ", ".join(plugin["capabilities"]),
            plugin["connectedAt"],
        )
    console.print(table)


def queue(
    json_output: JsonOption = False, url: UrlOption = None, token: TokenOption = None
) -> None:
    """List commands waiting for a plugin, per target, in delivery order."""
    from rich.table import Table

    result = with_client(url, token, lambda client: client.call("queue.list"))
    if json_output:
        print_json(result, compact=True)
        return
    if not result["commands"]:
        console.print("the command queue is empty")
        return
    table = Table(title=f"command queue ({result['depth']} waiting)")
    for column in ("target", "position", "command", "name", "attempt"):
        table.add_column(column)
    for command in result["commands"]:
        table.add_row(
            command["targetKey"],
            str(command.get("queuePosition", "")),
            command["commandId"],
            command["name"],
            str(command.get("attempt", 0)),
        )
    console.print(table)
