"""`clawgate devices …`: pair, list and revoke devices on a running gateway."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import typer

from ._common import console, fail, print_json
from .call import JsonOption, TokenOption, UrlOption, with_client
from .ids import pick_id, short_ids

__all__ = ["app"]

app = typer.Typer(help="Pair and manage devices.", no_args_is_help=True)


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _pick(given: str, ids: list[str], what: str) -> str:
    """Accept a full id or a unique prefix of one; fail with what to do otherwise."""
    return pick_id(given, ids, what=what, listing="clawgate devices list")


def _resolve_device(listing: dict[str, Any], prefix: str) -> str:
    """Accept a full device id or a unique prefix of one."""
    return _pick(prefix, [d["deviceId"] for d in listing["paired"]], "paired device")


def _resolve_request(listing: dict[str, Any], prefix: str) -> str:
    """Accept a full pairing request id or a unique prefix of one."""
    return _pick(prefix, [r["requestId"] for r in listing["pending"]], "pending pairing request")


@app.command("list")
def list_(
    json_output: JsonOption = False, url: UrlOption = None, token: TokenOption = None
) -> None:
    """Show pending pairing requests and paired devices (never token values)."""
    from rich.markup import escape
    from rich.table import Table

    listing = with_client(url, token, lambda client: client.call("device.pair.list"))
    if json_output:
        print_json(listing, compact=True)
        return
    # Every command takes these prefixes: the table shows each device id as its shortest
    # unique prefix (12 characters or more), never a cut that would match two devices.
    short = short_ids([d["deviceId"] for d in listing["pending"] + listing["paired"]])
    pending = Table(title="pending pairing requests")
    for column in ("request", "device", "name", "role", "scopes", "reason", "from", "asked"):
        pending.add_column(column)
    for request in listing["pending"]:
        pending.add_row(
            request["requestId"],
            short[request["deviceId"]],
            escape(request.get("displayName") or request.get("clientId") or "-"),
            request["role"],
            ", ".join(request["scopes"]) or "-",
            request["reason"],
            request.get("remoteIp") or "-",
            _when(request["ts"]),
        )
    paired = Table(title="paired devices")
    for column in ("device", "name", "platform", "roles", "scopes", "tokens", "approved"):
        paired.add_column(column)
    for device in listing["paired"]:
        tokens = ", ".join(
            f"{t['role']}{' (revoked)' if t.get('revokedAtMs') else ''}" for t in device["tokens"]
        )
        paired.add_row(
            short[device["deviceId"]],
            escape(device.get("displayName") or device.get("clientId") or "-"),
            escape(device.get("platform") or "-"),
            ", ".join(device["roles"]),
            ", ".join(device["approvedScopes"]) or "-",
            tokens or "-",
            _when(device["approvedAtMs"]),
        )
    console.print(pending if listing["pending"] else "no pending pairing requests")
    console.print(paired if listing["paired"] else "no paired devices")


@app.command("approve")
def approve(
    request_id: Annotated[
        str | None, typer.Argument(help="Request id from `devices list`, or a unique prefix.")
    ] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Approve the newest request.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Approve a pairing request (or the newest with --latest)."""
    if (request_id is None) == (not latest):
        fail("give a request id or --latest (not both)", 2)

    async def run(client: Any) -> dict[str, Any]:
        chosen = request_id
        if latest:
            pending = (await client.call("device.pair.list"))["pending"]
            if not pending:
                fail("no pending pairing requests", 1)
            chosen = max(pending, key=lambda request: request["ts"])["requestId"]
        else:
            chosen = _resolve_request(await client.call("device.pair.list"), str(request_id))
        result: dict[str, Any] = await client.call("device.pair.approve", {"requestId": chosen})
        return result

    result = with_client(url, token, run)
    device = result["device"]
    print(
        f"approved {device['deviceId']} ({', '.join(device['roles'])}: "
        f"{', '.join(device['approvedScopes']) or 'no scopes'})"
    )


@app.command("reject")
def reject(
    request_id: Annotated[
        str, typer.Argument(help="Request id from `devices list`, or a unique prefix.")
    ],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Reject a pairing request."""

    async def run(client: Any) -> dict[str, Any]:
        chosen = _resolve_request(await client.call("device.pair.list"), request_id)
        result: dict[str, Any] = await client.call("device.pair.reject", {"requestId": chosen})
        return result

    result = with_client(url, token, run)
    print(f"rejected request {result['requestId']} from {result['deviceId']}")


def _device_action(
    url: str | None, token: str | None, device: str, method: str, **extra: Any
) -> Any:
    async def run(client: Any) -> Any:
        listing = await client.call("device.pair.list")
        device_id = _resolve_device(listing, device)
        return await client.call(method, {"deviceId": device_id, **extra})

    return with_client(url, token, run)


RoleOption = Annotated[str, typer.Option(help="Which token: operator (default) or node.")]


@app.command("remove")
def remove(
    device: Annotated[str, typer.Argument(help="Device id or a unique prefix.")],
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Forget a device and its tokens; its open connections close."""
    result = _device_action(url, token, device, "device.pair.remove")
    print(f"removed {result['deviceId']}")


@app.command("rotate")
def rotate(
    device: Annotated[str, typer.Argument(help="Device id or a unique prefix.")],
    role: RoleOption = "operator",
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Replace a device's token; the old one stops working for new connections."""
    result = _device_action(url, token, device, "device.token.rotate", role=role)
    print(
        f"rotated the {result['role']} token of {result['deviceId']}; "
        "the device gets the new one when it reconnects"
    )


@app.command("revoke")
def revoke(
    device: Annotated[str, typer.Argument(help="Device id or a unique prefix.")],
    role: RoleOption = "operator",
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Revoke a device's token; its connections in that role close."""
    result = _device_action(url, token, device, "device.token.revoke", role=role)
    print(f"revoked the {result['role']} token of {result['deviceId']}")
