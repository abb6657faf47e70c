"""`clawgate approvals list|allow|deny`: answer system.run requests waiting for an operator."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ._common import print_json
from .call import JsonOption, TokenOption, UrlOption, with_client

__all__ = ["app"]

app = typer.Typer(help="Answer system.run requests that wait for approval.", no_args_is_help=True)

IdArg = Annotated[str, typer.Argument(help="Approval id from `approvals list`.")]


@app.command("list")
def list_(
    json_output: JsonOption = False, url: UrlOption = None, token: TokenOption = None
) -> None:
    """Show the system.run requests waiting for a decision."""
    listing = with_client(url, token, lambda client: client.call("exec.approval.list"))
    if json_output:
        print_json(listing, compact=True)
        return
    if not listing["approvals"]:
        print("no approvals pending")
    for approval in listing["approvals"]:
        print(
            f"{approval['id']}  node {approval['nodeId'][:12]}  "
            f"{approval['request']['command']}  (asked by {approval['requestedBy']})"
        )


def _resolve(url: str | None, token: str | None, approval_id: str, decision: str) -> None:
    params: dict[str, Any] = {"id": approval_id, "decision": decision}
    with_client(url, token, lambda client: client.call("exec.approval.resolve", params))
    print(f"{decision}: {approval_id}")


@app.command("allow")
def allow(
    approval_id: IdArg,
    always: Annotated[
        bool, typer.Option("--always", help="Also allow this exact argv from now on.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Let the command run once (or always, with --always)."""
    _resolve(url, token, approval_id, "allow-always" if always else "allow-once")


@app.command("deny")
def deny(approval_id: IdArg, url: UrlOption = None, token: TokenOption = None) -> None:
    """Refuse the command."""
    _resolve(url, token, approval_id, "deny")
