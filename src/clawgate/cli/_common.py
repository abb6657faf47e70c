"""Helpers shared by CLI commands: home, config, errors, output.

Every command ends through one table of exit codes (the README's "Exit codes" repeats it):

====  ==================  ====================================================
exit  JSON `error.code`   meaning
====  ==================  ====================================================
0     (none)              done
1     FAILED, or the      refused or failed: the gateway said no, a check
      gateway's code      failed, the thing asked for does not exist
2     USAGE, CONFIG,      a bad argument, option or config file, or no
      UNREACHABLE         gateway to talk to (not running, refused, TLS)
3     ALREADY_RUNNING     another daemon already runs in this home
====  ==================  ====================================================

Two codes come from shell conventions: 124 when `--wait` ran out (as `timeout(1)`) and 130
after Ctrl-C. `fail` is the one way out with an error: one line on stderr, or with `--json`
on the command line `{"error": {"code", "message"}}` on stdout and nothing on stderr.
"""

from __future__ import annotations

import asyncio
import errno
import os
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeVar

import orjson

from ..config import ClawgateConfig, ConfigError, load_config, with_env_overrides
from ..service.paths import HomeError, Paths, resolve_home
from ..service.runstate import NotRunning, RunState, find_running

if TYPE_CHECKING:
    from rich.console import Console

    from ..client import GatewayClient

T = TypeVar("T")

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_RUNNING",
    "EXIT_USAGE",
    "connection_failure",
    "console",
    "default_token",
    "default_url",
    "fail",
    "install_uvloop",
    "json_requested",
    "load_paths_and_config",
    "local_gateway",
    "print_json",
    "unreachable_message",
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


EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_RUNNING: Final = 3

#: The JSON error code for each exit code, when the caller names none more precise.
_ERROR_CODES: Final = {EXIT_FAILED: "FAILED", EXIT_USAGE: "USAGE", EXIT_RUNNING: "ALREADY_RUNNING"}


def json_requested(args: list[str] | None = None) -> bool:
    """Return whether the command line asks for JSON (`--json` before any `--`).

    Read from the arguments, not from the parsed options, so that a usage error (raised
    before any option is parsed) is reported as JSON too.
    """
    for arg in sys.argv[1:] if args is None else args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def fail(message: str, code: int = EXIT_FAILED, *, error: str | None = None) -> NoReturn:
    """Report what went wrong and what to do, then exit with `code` (see the module table).

    Args:
        message: one line: what failed and the next command to run.
        code: the exit code, from the table above.
        error: the JSON `error.code`; the exit code's default when None.
    """
    if json_requested():
        print_json(
            {"error": {"code": error or _ERROR_CODES.get(code, "FAILED"), "message": message}},
            compact=True,
        )
        raise SystemExit(code)
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
    except HomeError as exc:
        fail(str(exc), EXIT_USAGE)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE, error="CONFIG")


def local_gateway(paths: Paths) -> RunState:
    """Return the gateway running in this home, proven to be it, or fail with one line.

    Nothing is sent to an address before the process there proved it is the gateway that
    wrote `paths.run_state` (see `service/runstate.py`).
    """
    try:
        return find_running(paths.run_state)
    except NotRunning as exc:
        fail(str(exc), EXIT_USAGE, error="UNREACHABLE")


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


def connection_failure(
    exc: BaseException, *, start: str = "clawgate gateway start"
) -> tuple[str, str] | None:
    """Return (what failed, what to do) for a failed connection, in words, or None.

    None when nothing in `exc`'s chain comes from the network or TLS layers: the message is
    then clawgate's own (a refused handshake, a fingerprint mismatch) and says it already.
    Library names (`ClientConnectorError`, `ssl:default`) never reach the user.
    """
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and cause not in seen:
        seen.append(cause)
        cause = cause.__cause__ or cause.__context__
    for link in seen:
        if isinstance(link, ssl.SSLCertVerificationError):
            return "its TLS certificate is not trusted", "pass --tls-fingerprint with its SHA-256"
        if isinstance(link, ssl.SSLError):
            return (
                "the TLS handshake failed",
                "use wss:// for a gateway with [gateway.tls] enabled and ws:// otherwise",
            )
    for link in seen:
        if (
            isinstance(link, ConnectionRefusedError)
            or getattr(link, "errno", None) == errno.ECONNREFUSED
        ):
            return "connection refused", f"is it running? `{start}`"
        if isinstance(link, TimeoutError):
            return "no answer in time", "check the address and that the gateway runs"
        if type(link).__name__ == "ServerDisconnectedError" or isinstance(
            link, ConnectionResetError
        ):
            return (
                "it closed the connection without answering",
                "a gateway with [gateway.tls] enabled needs wss://",
            )
        strerror = getattr(link, "strerror", None)
        if isinstance(link, OSError) and strerror:
            return strerror[0].lower() + strerror[1:], "check the address and that the gateway runs"
    if any(type(link).__module__.split(".")[0] == "aiohttp" for link in seen):
        return "the connection failed", "check the address and that the gateway runs"
    return None


def unreachable_message(
    url: str,
    exc: BaseException,
    *,
    what: str = "the gateway",
    start: str = "clawgate gateway start",
) -> str:
    """Return the one line for a connection to `url` that failed with `exc`."""
    failure = connection_failure(exc, start=start)
    if failure is None:
        return str(exc)
    reason, advice = failure
    return f"cannot reach {what} at {url}: {reason}; {advice}"


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
        raise ProbeFailed(unreachable_message(state.url, exc)) from None
