"""`clawgate nodes …`: list, describe, rename and invoke nodes; approve their commands."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
import typer

from ._common import console, fail, print_json
from .call import JsonOption, TokenOption, UrlOption, with_client

__all__ = ["app"]

app = typer.Typer(
    help="List and invoke nodes; approve the commands they offer.", no_args_is_help=True
)

NodeArg = Annotated[str, typer.Argument(help="Node id, a unique prefix of one, or its name.")]


async def _resolve(client: Any, wanted: str) -> str:
    """Accept a node id, a unique id prefix, or an exact display name."""
    nodes = (await client.call("node.list"))["nodes"]
    exact = [n["nodeId"] for n in nodes if n["nodeId"] == wanted or n.get("displayName") == wanted]
    matches = exact or [n["nodeId"] for n in nodes if n["nodeId"].startswith(wanted.lower())]
    if len(matches) == 1:
        return str(matches[0])
    if not matches:
        fail(f"no node matches '{wanted}'; see `clawgate nodes list`", 1)
    fail(f"'{wanted}' matches {len(matches)} nodes; give more of the id", 1)


@app.command("list")
def list_(
    json_output: JsonOption = False, url: UrlOption = None, token: TokenOption = None
) -> None:
    """Show paired and connected nodes with their effective commands."""
    from rich.markup import escape
    from rich.table import Table

    listing = with_client(url, token, lambda client: client.call("node.list"))
    if json_output:
        print_json(listing, compact=True)
        return
    if not listing["nodes"]:
        print("no nodes; run `clawgate node run --url ws://GATEWAY:18789` on a machine")
        return
    table = Table(title="nodes")
    for column in ("node", "name", "platform", "connected", "commands"):
        table.add_column(column)
    for node in listing["nodes"]:
        table.add_row(
            node["nodeId"][:12],
            escape(node.get("displayName") or "-"),
            escape(node.get("platform") or "-"),
            "yes" if node["connected"] else "no",
            ", ".join(node["commands"]) or "-",
        )
    console.print(table)


@app.command("describe")
def describe(node: NodeArg, url: UrlOption = None, token: TokenOption = None) -> None:
    """Print everything the gateway knows of one node, as JSON."""

    async def run(client: Any) -> Any:
        return await client.call("node.describe", {"nodeId": await _resolve(client, node)})

    print_json(with_client(url, token, run), compact=False)


@app.command("rename")
def rename(
    node: NodeArg,
    name: Annotated[str, typer.Argument(help="The new display name.")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Give a node the name operators see."""

    async def run(client: Any) -> Any:
        node_id = await _resolve(client, node)
        return await client.call("node.rename", {"nodeId": node_id, "displayName": name})

    result = with_client(url, token, run)
    print(f"renamed {result['nodeId']} to {result['displayName']}")


@app.command("invoke")
def invoke(
    node: NodeArg,
    command: Annotated[str, typer.Argument(help="e.g. device.info, system.run")],
    params: Annotated[str | None, typer.Option("--params", help="Params as JSON.")] = None,
    timeout_ms: Annotated[int, typer.Option("--timeout-ms", min=1, max=600_000)] = 30_000,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Run a command on a node and print its payload (system.run may wait for approval)."""
    try:
        parsed = orjson.loads(params) if params is not None else None
    except orjson.JSONDecodeError as exc:
        fail(f"--params is not JSON: {exc}", 2)

    async def run(client: Any) -> Any:
        body: dict[str, Any] = {
            "nodeId": await _resolve(client, node),
            "command": command,
            "timeoutMs": timeout_ms,
            "idempotencyKey": str(uuid.uuid4()),
        }
        if parsed is not None:
            body["params"] = parsed
        # An approval may take its whole lifetime before the node even starts.
        return await client.call("node.invoke", body, timeout=None)

    result = with_client(url, token, run)
    print_json(result.get("payload"), compact=False)


@app.command("pending")
def pending(
    json_output: JsonOption = False, url: UrlOption = None, token: TokenOption = None
) -> None:
    """Show node command surfaces waiting for approval."""
    listing = with_client(url, token, lambda client: client.call("node.pair.list"))
    if json_output:
        print_json(listing, compact=True)
        return
    if not listing["pending"]:
        print("no node command surfaces wait for approval")
    for request in listing["pending"]:
        name = request.get("displayName") or request["nodeId"][:12]
        print(f"{request['requestId']}  {name}  {', '.join(request['commands']) or '-'}")


@app.command("approve")
def approve(
    request_id: Annotated[str, typer.Argument(help="Request id from `nodes pending`.")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Approve a node's command surface (needs operator.admin)."""
    result = with_client(
        url, token, lambda client: client.call("node.pair.approve", {"requestId": request_id})
    )
    node = result["node"]
    print(f"approved {node['nodeId']}: {', '.join(node['commands']) or 'no commands'}")


@app.command("reject")
def reject(
    request_id: Annotated[str, typer.Argument(help="Request id from `nodes pending`.")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Reject a node's command surface; what was approved before stays."""
    result = with_client(
        url, token, lambda client: client.call("node.pair.reject", {"requestId": request_id})
    )
    print(f"rejected request {result['requestId']} of {result['nodeId']}")
