"""`clawgate call`, `health`, `status`: talk to a running gateway."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import orjson
import typer

from ..config import ClawgateConfig, ConfigError
from ..service.paths import Paths
from ..service.runtime import resolve_tls
from ._common import (
    EXIT_FAILED,
    EXIT_USAGE,
    console,
    default_password,
    default_token,
    fail,
    load_paths_and_config,
    local_gateway,
    print_json,
    unreachable_message,
)

if TYPE_CHECKING:
    from ..client import GatewayClient

__all__ = ["JsonOption", "TokenOption", "UrlOption", "call", "health", "status", "with_client"]

T = TypeVar("T")

UrlOption = Annotated[str | None, typer.Option(help="Gateway URL (default: the local one).")]
TokenOption = Annotated[
    str | None, typer.Option(help="Token (default: CLAWGATE_GATEWAY_TOKEN or config.toml).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
TimeoutOption = Annotated[float, typer.Option(help="Seconds to wait for the answer.")]
TlsOption = Annotated[
    str | None,
    typer.Option(
        "--tls-fingerprint",
        help="SHA-256 of the gateway's certificate; abort before sending credentials "
        "if it differs (env CLAWGATE_TLS_FINGERPRINT).",
    ),
]


def _pin(url: str | None, given: str | None, paths: Paths, config: ClawgateConfig) -> str | None:
    """Return the fingerprint to pin: given, from the environment, or this home's own."""
    pin = given or os.environ.get("CLAWGATE_TLS_FINGERPRINT")
    if pin or url is not None:
        return pin
    try:
        material = resolve_tls(config, paths, generate=False)
    except ConfigError as exc:
        fail(str(exc), 2)
    return material.fingerprint if material else None


def with_client(
    url: str | None,
    token: str | None,
    action: Callable[[GatewayClient], Awaitable[T]],
    tls_fingerprint: str | None = None,
) -> T:
    """Connect as the CLI, run `action`, and turn failures into one-line errors."""
    # Imported here: `clawgate gateway run` loads this module but never needs a client.
    from ..client import GatewayCallError, GatewayClient, GatewayConnectionError, GatewayError

    paths, config = load_paths_and_config()
    pin = _pin(url, tls_fingerprint, paths, config)
    if url is None:
        # The recorded gateway, once it proved itself: never whatever holds the port.
        local = local_gateway(paths)
        target, pin = local.url, pin or local.tls_fingerprint
    else:
        target = url
    password = None if token else default_password(config)
    try:
        client = GatewayClient(
            target,
            token=token or default_token(config),
            password=password,
            client_id="cli",
            client_mode="cli",
            scopes=("operator.admin",),
            tls_fingerprint=pin,
        )
    except ValueError as exc:
        fail(f"{exc}", 2)

    async def session() -> T:
        async with client:
            return await action(client)

    try:
        return asyncio.run(session())
    except GatewayCallError as exc:
        detail = exc.details.get("code") if isinstance(exc.details, dict) else None
        suffix = f" ({detail})" if detail else ""
        fail(f"{exc.code}{suffix}: {exc.message}", EXIT_FAILED, error=exc.code)
    except GatewayConnectionError as exc:
        if "fingerprint" in str(exc):
            fail(
                f"{exc}; nothing was sent. Check the fingerprint with the gateway's owner",
                EXIT_USAGE,
                error="UNREACHABLE",
            )
        message = unreachable_message(target, exc)
        if url is not None and "clawgate gateway start" in message:
            message += " (or check --url)"
        fail(message, EXIT_USAGE, error="UNREACHABLE")
    except GatewayError as exc:
        fail(str(exc))


def call(
    method: Annotated[str, typer.Argument(help="Method name, e.g. health.")],
    params: Annotated[
        str | None, typer.Option(help="Params as a JSON object, e.g. '{\"probe\":true}'.")
    ] = None,
    json_output: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    timeout: TimeoutOption = 30.0,
    tls_fingerprint: TlsOption = None,
) -> None:
    """Call any gateway method and print its result."""
    parsed: Any = None
    if params is not None:
        try:
            parsed = orjson.loads(params)
        except orjson.JSONDecodeError:
            fail("--params must be valid JSON, e.g. '{\"probe\": true}'", 2)
    result = with_client(
        url, token, lambda client: client.call(method, parsed, timeout=timeout), tls_fingerprint
    )
    print_json(result, compact=json_output)


def _duration(ms: int) -> str:
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes}m {seconds}s" if hours else f"{minutes}m {seconds}s"


def health(
    probe: Annotated[bool, typer.Option(help="Refresh instead of reading the cache.")] = False,
    json_output: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    tls_fingerprint: TlsOption = None,
) -> None:
    """Show the gateway's health."""
    from rich.table import Table

    result = with_client(
        url,
        token,
        lambda client: client.call("health", {"probe": True} if probe else None),
        tls_fingerprint,
    )
    if json_output:
        print_json(result, compact=True)
        return
    table = Table(title="clawgate health", show_header=False)
    table.add_row("ok", "[green]yes[/]" if result["ok"] else "[red]no[/]")
    table.add_row("default agent", result["defaultAgentId"])
    table.add_row("heartbeat", f"every {result['heartbeatSeconds']}s")
    table.add_row("sessions", str(result["sessions"]["count"]))
    channels = result["channels"]
    table.add_row(
        "channels",
        ", ".join(
            f"{name} ({'running' if state['running'] else 'stopped'})"
            for name, state in channels.items()
        )
        or "none configured",
    )
    table.add_row("checked in", f"{result['durationMs']} ms")
    console.print(table)


def status(
    json_output: JsonOption = False,
    url: UrlOption = None,
    token: TokenOption = None,
    tls_fingerprint: TlsOption = None,
) -> None:
    """Show the gateway's status."""
    from rich.table import Table

    result = with_client(url, token, lambda client: client.call("status"), tls_fingerprint)
    if json_output:
        print_json(result, compact=True)
        return
    table = Table(title="clawgate status", show_header=False)
    table.add_row("version", result["runtimeVersion"])
    table.add_row("uptime", _duration(result["uptimeMs"]))
    if "pid" in result:
        table.add_row("pid", str(result["pid"]))
    if "processMemory" in result:
        table.add_row("memory", f"{result['processMemory']['rssBytes'] / 1_048_576:.1f} MiB")
    agents = result["heartbeat"]["agents"]
    for agent in agents:
        state = "on" if agent["enabled"] else "off"
        table.add_row(f"heartbeat {agent['agentId']}", f"{state}, every {agent['every']}")
    table.add_row("sessions", str(result["sessions"]["count"]))
    table.add_row("queued system events", str(len(result["queuedSystemEvents"])))
    if url is None:
        paths, config = load_paths_and_config()
        with contextlib.suppress(ConfigError):
            material = resolve_tls(config, paths, generate=False)
            if material is not None:
                table.add_row("TLS SHA-256", material.fingerprint)
    console.print(table)
