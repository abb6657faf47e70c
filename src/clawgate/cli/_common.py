"""Helpers shared by CLI commands: home, config, errors, output."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import orjson

from ..config import ClawgateConfig, ConfigError, load_config, with_env_overrides
from ..service.paths import HomeError, Paths, resolve_home
from ..service.runstate import NotRunning, RunState, find_running

if TYPE_CHECKING:
    from rich.console import Console

    from ..client import GatewayClient

T = TypeVar("T")

__all__ = [
    "console",
    "default_token",
    "default_url",
    "fail",
    "install_uvloop",
    "load_paths_and_config",
    "local_gateway",
    "print_json",
]


class _LazyConsole:
    """A rich `Console` made on first use.

    rich is imported only by commands that print through it: `gateway run` prints plain
    lines, and every module it does not import is memory the daemon does not hold. For the
    same reason the commands import `rich.table` and `rich.markup` inside their bodies.
    """

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            # emoji=False: rich would turn ":cd:" in a TLS fingerprint or device id into an emoji.
            self._console = Console(stderr=self._stderr, emoji=False)
        return getattr(self._console, name)


console: Console = _LazyConsole()  # type: ignore[assignment]
err_console: Console = _LazyConsole(stderr=True)  # type: ignore[assignment]


def install_uvloop() -> None:
    """Make the next ``asyncio.run`` use uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # optional: the stdlib loop works too, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one line saying what went wrong and what to do, then exit non-zero."""
    from rich.markup import escape

    # Escaped: messages name config tables like [gateway.auth], which rich reads as markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    # SystemExit, not typer.Exit: `gateway run` fails through here without typer loaded
    # (cli/gateway_run.py); under typer both end the process with `code`, printing nothing.
    raise SystemExit(code)


def load_paths_and_config() -> tuple[Paths, ClawgateConfig]:
    """Resolve the home and read its config, failing with one line on error."""
    try:
        paths = Paths(resolve_home())
        return paths, with_env_overrides(load_config(paths.config))
    except (HomeError, ConfigError) as exc:
        fail(str(exc), 2)


def local_gateway(paths: Paths) -> RunState:
    """Return the gateway running in this home, proven to be it, or fail with one line.

    Nothing is sent to an address before the process there proved it is the gateway that
    wrote `paths.run_state` (see `service/runstate.py`).
    """
    try:
        return find_running(paths.run_state)
    except NotRunning as exc:
        fail(str(exc), 2)


def default_url(config: ClawgateConfig) -> str:
    """Return the configured local gateway's WebSocket URL (for display; dial `local_gateway`)."""
    scheme = "wss" if config.gateway.tls.enabled else "ws"
    return f"{scheme}://127.0.0.1:{config.gateway.port}/"


def default_token(config: ClawgateConfig) -> str | None:
    """Return the token the CLI should use: environment first, then the config file."""
    return os.environ.get("CLAWGATE_GATEWAY_TOKEN") or config.gateway.auth.token


def default_password(config: ClawgateConfig) -> str | None:
    """Return the password the CLI should use: environment first, then the config file."""
    return os.environ.get("CLAWGATE_GATEWAY_PASSWORD") or config.gateway.auth.password


def print_json(value: Any, *, compact: bool) -> None:
    """Print `value` as JSON: one line for scripts, indented for people."""
    option = 0 if compact else orjson.OPT_INDENT_2
    sys.stdout.write(orjson.dumps(value, option=option).decode() + "\n")


class ProbeFailed(Exception):
    """The local gateway could not be asked (not running, refused, timed out); says why."""


def ask_gateway(
    config: ClawgateConfig,
    pin: str | None,
    question: Callable[[GatewayClient], Awaitable[T]],
    *,
    scopes: tuple[str, ...] = ("operator.read",),
) -> T:
    """Log in to the local gateway with the config's credential, ask, and return the answer.

    The gateway is the one recorded in this home's state file, and only once it proved it
    is that process (`service/runstate.py`): the credential never goes to another server.

    Raises:
        ProbeFailed: with the reason, when it cannot be found, reached or answered.
    """
    from ..client import GatewayClient, GatewayError  # only the commands that probe load it

    try:
        state = find_running(Paths(resolve_home()).run_state)
    except (NotRunning, HomeError) as exc:
        raise ProbeFailed(str(exc)) from None

    async def ask() -> T:
        async with GatewayClient(
            state.url,
            token=default_token(config),
            password=default_password(config),
            client_id="cli",
            client_mode="cli",
            scopes=scopes,
            connect_timeout=3,
            tls_fingerprint=state.tls_fingerprint or pin,
        ) as client:
            return await question(client)

    try:
        return asyncio.run(ask())
    except (GatewayError, OSError, TimeoutError, ValueError) as exc:
        raise ProbeFailed(str(exc)) from None
