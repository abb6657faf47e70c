"""`clawgate channels …`, `clawgate pairing …`, `clawgate message send`: messaging channels."""

from __future__ import annotations

import datetime
import sys
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from ._common import console, fail, load_paths_and_config, print_json
from .call import JsonOption, TokenOption, UrlOption, with_client

if TYPE_CHECKING:
    from ..client import GatewayClient

__all__ = ["app", "message_app", "pairing_app"]

app = typer.Typer(help="Messaging channels: list, status, login, logout.", no_args_is_help=True)
pairing_app = typer.Typer(
    help="Approve strangers who asked to talk to the agent (DM pairing codes).",
    no_args_is_help=True,
)
message_app = typer.Typer(help="Send messages on a channel.", no_args_is_help=True)

ChannelArg = Annotated[str, typer.Argument(help="Channel name as in config, e.g. telegram.")]
AccountOption = Annotated[
    str | None, typer.Option("--account", help="Account id (default: default).")
]


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


@app.command("list")
def list_(json_output: JsonOption = False) -> None:
    """Show the channel accounts config.toml configures (never their credentials)."""
    from ..channels.settings import resolve_accounts

    paths, config = load_paths_and_config()
    accounts = resolve_accounts(config.channels, paths.home).accounts
    rows: list[dict[str, Any]] = [
        {
            "channel": a.channel,
            "accountId": a.account_id,
            "enabled": a.enabled,
            "dmPolicy": a.dm_policy,
            "groupPolicy": a.group_policy,
            "mode": a.options.get("mode"),
            "credential": "set" if a.secret else "missing",
            "credentialSource": a.secret_source,
        }
        for a in accounts
    ]
    if json_output:
        print_json(rows, compact=True)
        return
    if not rows:
        console.print("no channel configured; add [channels.telegram] to config.toml")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="configured channels")
    for column in ("channel", "account", "enabled", "dm", "groups", "mode", "credential"):
        table.add_column(column)
    for row in rows:
        credential = row["credential"] + f" ({row['credentialSource']})"
        table.add_row(
            row["channel"],
            row["accountId"],
            "yes" if row["enabled"] else "no",
            row["dmPolicy"],
            row["groupPolicy"],
            row["mode"] or "-",
            escape(credential),
        )
    console.print(table)


@app.command("status")
def status(
    json_output: JsonOption = False, url: UrlOption = None, token: TokenOption = None
) -> None:
    """Show every channel account of the running gateway: state, last traffic, last error."""
    result = with_client(url, token, lambda client: client.call("channels.status"))
    if json_output:
        print_json(result, compact=True)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="channels")
    for column in ("channel", "account", "state", "connected", "last in", "last out", "error"):
        table.add_column(column)
    for entry in result["channels"]:
        color = {"connected": "green", "failed": "red", "backoff": "yellow"}.get(entry["state"], "")
        state = f"[{color}]{entry['state']}[/]" if color else entry["state"]
        table.add_row(
            entry["channel"],
            entry["accountId"],
            state,
            "yes" if entry["connected"] else "no",
            _when(entry.get("lastInboundAt")),
            _when(entry.get("lastOutboundAt")),
            escape(entry.get("lastError") or "-"),
        )
    console.print(table)


@app.command("login")
def login(
    channel: ChannelArg,
    account: AccountOption = None,
    token_file: Annotated[
        str | None,
        typer.Option(help="Store this token file's path in config.toml (the token stays there)."),
    ] = None,
    token_stdin: Annotated[
        bool, typer.Option("--token-stdin", help="Read the token from stdin into config.toml.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Set an account's credential in config.toml, or start a logged-out account again.

    For personal WhatsApp, show the QR code to scan (WhatsApp: Linked devices) until linked.
    """
    if token_file is not None or token_stdin:
        _store_credential(channel, account, token_file, token_stdin)
        return
    from .qr_link import link_by_qr, links_by_qr

    async def log_in(client: GatewayClient) -> dict[str, Any]:
        if await links_by_qr(client, channel, account):
            return {"linked": await link_by_qr(client, channel, account)}
        answer: dict[str, Any] = await client.call(
            "channels.login", {"channel": channel, "accountId": account}
        )
        return answer

    result = with_client(url, token, log_in)
    if "linked" in result:
        if not result["linked"]:
            fail("no QR code was scanned in time; run the command again", 1)
        print(f"{channel}: linked")
        return
    print(f"{result['channel']}/{result['accountId']}: {result.get('state', 'starting')}")


#: Channels whose accounts have no credential for `login` to store, and what to do instead.
_NO_CREDENTIAL: Final = {
    "signal": "signal-cli holds the account's keys; link or register it there (README: Signal)",
    "webchat": "WebChat uses the gateway's own token",
}

#: The (secret, file, env) keys of channels whose credential is not called `token`.
_CREDENTIAL_KEYS: Final = {
    "irc": ("password", "password_file", "password_env"),
    "matrix": ("access_token", "access_token_file", "access_token_env"),
    # The bot token (xoxb-); the app-level token is set in config.toml or the environment.
    "slack": ("bot_token", "bot_token_file", "bot_token_env"),
    # The access token; the app secret and verify token are set in config.toml or the env.
    "whatsapp": ("access_token", "access_token_file", "access_token_env"),
    # The BlueBubbles server password.
    "imessage": ("password", "password_file", "password_env"),
}


def _store_credential(
    channel: str, account: str | None, token_file: str | None, from_stdin: bool
) -> None:
    import tomlkit

    from ..config_file import read_snapshot, validate_raw, write_config

    if token_file is not None and from_stdin:
        fail("give --token-file or --token-stdin, not both", 2)
    if channel in _NO_CREDENTIAL:
        fail(f"{channel} takes no token: {_NO_CREDENTIAL[channel]}", 2)
    paths, _ = load_paths_and_config()
    snapshot = read_snapshot(paths.config)
    document = tomlkit.parse(snapshot.raw)
    table: Any = document.setdefault("channels", tomlkit.table()).setdefault(
        channel, tomlkit.table()
    )
    if account is not None and account != "default":
        table = table.setdefault("accounts", tomlkit.table()).setdefault(account, tomlkit.table())
    keys = _CREDENTIAL_KEYS.get(channel, ("token", "token_file", "token_env"))
    for key in keys:
        table.pop(key, None)
    if from_stdin:
        secret = sys.stdin.readline().strip()
        if not secret:
            fail("no token on stdin", 2)
        table[keys[0]] = secret
    else:
        table[keys[1]] = token_file
    text = tomlkit.dumps(document)
    _, config, issues = validate_raw(text)
    if config is None:
        fail(f"cannot store it: {issues[0]['path']}: {issues[0]['message']}", 2)
    paths.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_config(paths.config, text)
    print(f"stored the {channel} credential in {paths.config}; restart the gateway to use it")


@app.command("logout")
def logout(
    channel: ChannelArg,
    account: AccountOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Stop an account and drop its platform session; it stays off until `channels login`."""
    result = with_client(
        url,
        token,
        lambda client: client.call("channels.logout", {"channel": channel, "accountId": account}),
    )
    print(f"{result['channel']}/{result['accountId']}: logged out")


@pairing_app.command("list")
def pairing_list(
    json_output: JsonOption = False, url: UrlOption = None, token: TokenOption = None
) -> None:
    """Show the pending pairing codes: channel, account, sender, code, expiry."""
    result = with_client(url, token, lambda client: client.call("channels.pairing.list"))
    pending = result["pending"]
    if json_output:
        print_json(
            [
                {
                    "channel": p["channel"],
                    "account": p["accountId"],
                    "sender": p["sender"],
                    "senderName": p["senderName"],
                    "code": p["code"],
                    "expiry": p["expiresAt"],
                }
                for p in pending
            ],
            compact=True,
        )
        return
    if not pending:
        console.print("no pending pairing codes")
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="pending pairing codes")
    for column in ("channel", "account", "sender", "name", "code", "expires"):
        table.add_column(column)
    for p in pending:
        table.add_row(
            p["channel"],
            p["accountId"],
            p["sender"],
            escape(p["senderName"] or "-"),
            p["code"],
            _when(p["expiresAt"]),
        )
    console.print(table)


CodeArg = Annotated[str, typer.Argument(help="The code the sender received.")]


def _resolve(method: str, channel: str, code: str, url: str | None, token: str | None) -> Any:
    return with_client(
        url, token, lambda client: client.call(method, {"channel": channel, "code": code})
    )


@pairing_app.command("approve")
def pairing_approve(
    channel: ChannelArg, code: CodeArg, url: UrlOption = None, token: TokenOption = None
) -> None:
    """Allow the sender holding CODE to talk to the agent from now on."""
    result = _resolve("channels.pairing.approve", channel, code, url, token)
    print(f"approved sender {result['sender']} on {result['channel']}/{result['accountId']}")


@pairing_app.command("reject")
def pairing_reject(
    channel: ChannelArg, code: CodeArg, url: UrlOption = None, token: TokenOption = None
) -> None:
    """Drop a pending code; its sender stays unknown."""
    result = _resolve("channels.pairing.reject", channel, code, url, token)
    print(f"rejected sender {result['sender']} on {result['channel']}/{result['accountId']}")


@message_app.command("send")
def message_send(
    text: Annotated[str, typer.Argument(help="The message text.")] = "",
    channel: Annotated[str | None, typer.Option(help="Channel (needed when several).")] = None,
    to: Annotated[str, typer.Option(help="Chat or peer id on the platform.")] = "",
    account: AccountOption = None,
    thread: Annotated[str | None, typer.Option(help="Thread or topic id.")] = None,
    reply_to: Annotated[str | None, typer.Option(help="Platform message id to reply to.")] = None,
    media: Annotated[
        list[str] | None, typer.Option(help="A file under <home>/media, or an URL (repeatable).")
    ] = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Send a message on a channel without running the agent."""
    if not to:
        fail("give --to PEER (the chat or user id on the platform)", 2)
    params: dict[str, Any] = {"to": to, "idempotencyKey": str(uuid.uuid4())}
    for key, value in (
        ("message", text or None),
        ("channel", channel),
        ("accountId", account),
        ("threadId", thread),
        ("replyTo", reply_to),
        ("mediaUrls", media or None),
    ):
        if value is not None:
            params[key] = value
    result = with_client(url, token, lambda client: client.call("send", params))
    if json_output:
        print_json(result, compact=True)
        return
    print(f"sent on {result['channel']} to {result.get('chatId')}: message {result['messageId']}")
