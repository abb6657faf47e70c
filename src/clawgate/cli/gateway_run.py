"""`clawgate gateway run` without typer: its options read from argv, then the gateway.

`gateway run` is the process that stays up, and typer with click costs it ~2 MiB of
resident memory it never uses again (issue 12 point 7). So `cli/main.py` hands a plain
command line here: `parse_run_options` reads only forms whose meaning is certain and
returns None for anything else (help, an unknown or repeated option, a value typer would
reject or convert), which the typer command (`cli/gateway.py`, the same options) then
parses with its own messages and exit codes. `tests/unit/test_gateway_run_options.py`
holds the two parsers to the same options and the same values.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, TextIO
from urllib.parse import quote

from ..config import ConfigError
from ..files import AlreadyRunning, PidLock
from ..gateway.server import BackgroundFailure, GatewayServer
from ..ipc import AlreadyServing, SocketPathError
from ..protocol.auth import AuthMode
from ..service.daemon import DETACHED_ENV
from ..service.logs import setup_logging
from ..service.paths import HomeError, Paths
from ..service.ports import port_holder
from ..service.runtime import AuthSource, GatewayOverrides, check_startup, run_gateway
from ..store import StoreError
from ._common import fail, install_uvloop, load_paths_and_config

__all__ = ["RunOptions", "parse_run_options", "run_foreground"]

logger = logging.getLogger("clawgate.service")

PORT_MAX: Final = 65535
# The option names of `gateway run` and the RunOptions field each one sets.
OPTIONS: Final = {
    "--port": "port",
    "--bind": "bind",
    "--auth": "auth",
    "--token": "token",
    "--password": "password",
    "--log-format": "log_format",
}


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The options of `gateway run`; None: not given."""

    overrides: GatewayOverrides
    log_format: str | None = None


def _value(field: str, text: str) -> Any:
    """Return `text` as `field`'s value, or None when typer must judge it."""
    if field == "port":
        if not (text.isascii() and text.isdigit()) or int(text) > PORT_MAX:
            return None
        return int(text)
    if field == "auth":
        return AuthMode(text) if text in {mode.value for mode in AuthMode} else None
    return text


def parse_run_options(argv: Sequence[str]) -> RunOptions | None:
    """Return the options of a plain `gateway run` command line, or None to let typer parse it.

    Read here: each option at most once, as `--name value` or `--name=value`, with a value
    that is not empty and does not start with `-`, a decimal port in range and an exact
    auth mode. Everything else returns None.
    """
    values: dict[str, Any] = {}
    position = 0
    while position < len(argv):
        name, equals, text = argv[position].partition("=")
        if not equals:
            if position + 1 == len(argv):
                return None
            text = argv[position + 1]
            position += 1
        position += 1
        field = OPTIONS.get(name)
        if field is None or field in values or not text or text.startswith("-"):
            return None
        value = _value(field, text)
        if value is None:
            return None
        values[field] = value
    log_format = values.pop("log_format", None)
    return RunOptions(GatewayOverrides(**values), log_format)


def _webchat_line(http: str, server: GatewayServer, out: TextIO) -> str:
    """Return the WebChat line: with the token fragment only when `out` is a terminal.

    The link is the one deliberate exception to "never print the token": it goes only to
    the terminal of the user who started the gateway. Redirected output (a service's
    journal, `gateway start`'s stdout log) gets the plain URL, so no file ever holds it.
    """
    secret = server.access.auth.secret
    if server.access.auth.mode is AuthMode.TOKEN and secret and out.isatty():
        # The fragment stays in the browser: it is never sent in an HTTP request.
        return f"  WebChat: {http}#token={quote(secret, safe='')}"
    if server.access.auth.mode is AuthMode.NONE:
        return f"  WebChat: {http}"
    return f"  WebChat: {http} (the page asks for the {server.access.auth.mode.value})"


def _announce(server: GatewayServer, source: AuthSource) -> None:
    """Print where the gateway listens and how to get the token (the token only in a link)."""
    http = server.url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    lines = [
        f"clawgate gateway {server.url} (pid {os.getpid()})",
        _webchat_line(http, server, sys.stdout),
    ]
    if server.canvas is not None:
        lines.append(f"  canvas: {server.canvas.host_url()}/ serving {server.canvas.root}")
    tls = server.settings.tls
    if tls is not None:
        lines.append(f"  TLS fingerprint (SHA-256): {tls.fingerprint}")
        lines.append(f"  remote clients: pass --tls-fingerprint {tls.fingerprint}")
    mode = server.access.auth.mode
    if mode is AuthMode.TOKEN:
        origin = "generated and stored in" if source.generated else "from"
        lines.append(f"  auth: token, {origin} {source.description}")
        lines.append("  clients: `clawgate call health` reads the token from there")
    elif mode is AuthMode.PASSWORD:
        lines.append(f"  auth: password, from {source.description}")
    else:
        lines.append("  auth: none (loopback only)")
    print("\n".join(lines), flush=True)


def run_foreground(options: RunOptions) -> None:
    """Run the gateway in the foreground until SIGTERM or Ctrl-C."""
    os.umask(0o077)
    # `gateway start` marks its child; the mark must not reach the gateway's own children.
    detached = os.environ.pop(DETACHED_ENV, "") == "1"
    paths, config = load_paths_and_config()
    try:
        for warning in paths.ensure():
            print(f"warning: {warning}", file=sys.stderr)
    except HomeError as exc:
        fail(str(exc), 2)
    lock = PidLock(paths.pid_file)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        fail(f"{exc}; stop it with `clawgate gateway stop`", 3)
    try:
        _run_locked(
            paths,
            config,
            options.overrides,
            options.log_format,
            lock,
            detached=detached,
        )
    finally:
        lock.release()


def _run_locked(
    paths: Paths,
    config: Any,
    overrides: GatewayOverrides,
    log_format: str | None,
    lock: PidLock,
    *,
    detached: bool,
) -> None:
    try:
        # The same checks as `config validate`; under the lock: a first start writes a token.
        settings, source = check_startup(config, paths, overrides)
    except ConfigError as exc:
        fail(str(exc), 2, error="CONFIG")
    fmt = log_format or config.log.format
    if fmt not in ("text", "json"):
        fail("--log-format must be text or json", 2)
    setup_logging(config.log.level, fmt, settings.log_file)
    if lock.stale_pid:
        logger.warning("replaced a stale PID file left by pid %d", lock.stale_pid)
    install_uvloop()
    try:
        asyncio.run(
            run_gateway(settings, lambda server: _announce(server, source), detached=detached)
        )
    except ssl.SSLError as exc:
        fail(f"cannot use the TLS certificate or key: {exc.reason or exc}", 2)
    except OSError as exc:
        holder = port_holder(settings.port)
        held_by = f" (held by {holder})" if holder else ""
        fail(
            f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}{held_by}; "
            "stop that process or pick another port with --port",
            1,
        )
    except StoreError as exc:
        fail(f"cannot use {paths.state_db}: {exc}", 2)
    except BackgroundFailure as exc:
        fail(str(exc), 1)
    except (AlreadyServing, SocketPathError) as exc:
        fail(
            f"{exc}; use a shorter CLAWGATE_HOME or stop the other daemon",
            2 if isinstance(exc, SocketPathError) else 3,
        )
    except KeyboardInterrupt:
        pass
