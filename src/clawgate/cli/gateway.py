"""`clawgate gateway …`: run the gateway in the foreground, print its schema."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated

import typer

from ..config import ConfigError
from ..gateway.schema_export import protocol_schema_bytes
from ..gateway.server import GatewayServer
from ..protocol.auth import AuthMode
from ..service.logs import setup_logging
from ..service.paths import HomeError
from ..service.runtime import AuthSource, GatewayOverrides, resolve_settings, run_gateway
from ._common import fail, load_paths_and_config

__all__ = ["app"]

app = typer.Typer(help="Run and inspect the gateway.", no_args_is_help=True)


def _announce(server: GatewayServer, source: AuthSource) -> None:
    """Print where the gateway listens and how to get the token (never the token)."""
    http = server.url.replace("ws://", "http://")
    lines = [
        f"clawgate gateway {server.url} (pid {os.getpid()})",
        f"  WebChat: {http}",
    ]
    mode = server.auth.mode
    if mode is AuthMode.TOKEN:
        origin = "generated and stored in" if source.generated else "from"
        lines.append(f"  auth: token, {origin} {source.description}")
        lines.append("  clients: `clawgate call health` reads the token from there")
    elif mode is AuthMode.PASSWORD:
        lines.append(f"  auth: password, from {source.description}")
    else:
        lines.append("  auth: none (loopback only)")
    print("\n".join(lines), flush=True)


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # optional: the stdlib loop works too, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


@app.command("run")
def run(
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 18789).")] = None,
    bind: Annotated[
        str | None, typer.Option(help="loopback (default), lan, or an IP address.")
    ] = None,
    auth: Annotated[
        AuthMode | None, typer.Option(help="How clients authenticate (default token).")
    ] = None,
    token: Annotated[str | None, typer.Option(help="Shared token for token auth.")] = None,
    password: Annotated[str | None, typer.Option(help="Shared password for password auth.")] = None,
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="text (default) or json.")
    ] = None,
) -> None:
    """Run the gateway in the foreground until SIGTERM or Ctrl-C."""
    os.umask(0o077)
    paths, config = load_paths_and_config()
    try:
        for warning in paths.ensure():
            print(f"warning: {warning}", file=sys.stderr)
        overrides = GatewayOverrides(port, bind, auth, token, password)
        settings, source = resolve_settings(config, paths, overrides)
    except (ConfigError, HomeError) as exc:
        fail(str(exc), 2)
    fmt = log_format or config.log.format
    if fmt not in ("text", "json"):
        fail("--log-format must be text or json", 2)
    setup_logging(config.log.level, fmt, settings.log_file)
    _install_uvloop()
    try:
        asyncio.run(run_gateway(settings, lambda server: _announce(server, source)))
    except OSError as exc:
        fail(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}; "
            "is another gateway running? pick another port with --port",
            1,
        )
    except KeyboardInterrupt:
        pass


@app.command("schema")
def schema() -> None:
    """Print the protocol's JSON Schema."""
    sys.stdout.buffer.write(protocol_schema_bytes())
