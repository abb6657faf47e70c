"""`clawgate gateway …`: run in the foreground or background, stop, inspect, install."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from ..config import ConfigError, bind_host
from ..files import running_pid
from ..gateway.schema_export import protocol_schema_bytes
from ..protocol.auth import AuthMode
from ..service.daemon import gateway_files, start_detached
from ..service.paths import HomeError, Paths, resolve_home
from ..service.runstate import NotRunning, find_running
from ..service.runtime import (
    GatewayOverrides,
    resolve_tls,
)
from . import install as install_commands
from ._common import console, fail, load_paths_and_config, print_json
from .daemon_ops import refuse_foreign_restart, show_logs, stop_and_say
from .daemon_status import gather_status, render_status
from .gateway_run import RunOptions, run_foreground

__all__ = ["app"]

app = typer.Typer(help="Run and inspect the gateway.", no_args_is_help=True)
app.command("install")(install_commands.install)
app.command("uninstall")(install_commands.uninstall)

logger = logging.getLogger("clawgate.service")

PortOption = Annotated[
    int | None,
    typer.Option(
        min=0, max=65535, help="Port to listen on, 1-65535 (default 18789; 0 picks a free one)."
    ),
]
BindOption = Annotated[str | None, typer.Option(help="loopback (default), lan, or an IP address.")]
AuthOption = Annotated[
    AuthMode | None, typer.Option(help="How clients authenticate (default token).")
]
TokenOption = Annotated[str | None, typer.Option(help="Shared token for token auth.")]
PasswordOption = Annotated[str | None, typer.Option(help="Shared password for password auth.")]
LogFormatOption = Annotated[
    str | None, typer.Option("--log-format", help="text (default) or json.")
]


@app.command("run")
def run(
    port: PortOption = None,
    bind: BindOption = None,
    auth: AuthOption = None,
    token: TokenOption = None,
    password: PasswordOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run the gateway in the foreground until SIGTERM or Ctrl-C."""
    # `clawgate gateway run` itself reaches run_foreground without typer (cli/main.py);
    # this command serves the command lines only typer can judge (help, errors).
    run_foreground(RunOptions(GatewayOverrides(port, bind, auth, token, password), log_format))


@app.command("start")
def start(
    port: PortOption = None,
    bind: BindOption = None,
    auth: AuthOption = None,
    token: TokenOption = None,
    password: PasswordOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Start the gateway in the background and wait until it is ready."""
    paths, config = load_paths_and_config()
    pid = running_pid(paths.pid_file)
    if pid is not None:
        fail(f"already running (pid {pid}); stop it with `clawgate gateway stop`", 3)
    args: list[str] = []
    for flag, value in (("--port", port), ("--bind", bind), ("--log-format", log_format)):
        if value is not None:
            args += [flag, str(value)]
    if auth is not None:
        args += ["--auth", auth.value]
    # Secrets travel in the environment, never on a command line that `ps` shows.
    if token is not None:
        os.environ["CLAWGATE_GATEWAY_TOKEN"] = token
    if password is not None:
        os.environ["CLAWGATE_GATEWAY_PASSWORD"] = password
    try:
        bind_host(bind or config.gateway.bind)
        paths.ensure()
        # Made here, not in the child, so its fingerprint is printed below.
        tls = resolve_tls(config, paths)
    except (ConfigError, HomeError) as exc:
        fail(str(exc), 2)
    result = start_detached(gateway_files(paths), args)
    if not result.ok or result.state is None:
        # Exit 3 from the child means another daemon won the lock meanwhile (spec §1.2).
        fail(f"gateway did not start: {result.detail}", 3 if result.exit_code == 3 else 1)
    state = result.state
    lines = [
        f"clawgate gateway started (pid {state.pid}) on {state.url}",
        webchat_hint(state.http_url + "/", config.gateway.auth.mode),
        f"  logs: {paths.log_file}",
    ]
    if tls:
        lines.append(f"  TLS fingerprint (SHA-256): {tls.fingerprint}")
    print("\n".join(lines))


def webchat_hint(http_url: str, mode: AuthMode) -> str:
    """Return the WebChat line `start` prints: the URL and how to log in (never the token)."""
    if mode is AuthMode.TOKEN:
        return f"  WebChat: {http_url} (`clawgate dashboard` prints the link with the token)"
    if mode is AuthMode.PASSWORD:
        return f"  WebChat: {http_url} (the page asks for the password)"
    return f"  WebChat: {http_url}"


@app.command("stop")
def stop() -> None:
    """Stop the background gateway: SIGTERM, then SIGKILL if it does not drain in time."""
    paths, _ = load_paths_and_config()
    stop_and_say(gateway_files(paths))


@app.command("restart")
def restart(
    port: PortOption = None,
    bind: BindOption = None,
    auth: AuthOption = None,
    token: TokenOption = None,
    password: PasswordOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Stop the gateway if it runs, then start it in the background.

    Only a gateway `gateway start` spawned is replaced: one in the foreground (`gateway run`)
    or under a service manager is left alone, with a message saying how to restart it.
    """
    paths, _ = load_paths_and_config()
    refuse_foreign_restart(gateway_files(paths))
    stop()
    start(port, bind, auth, token, password, log_format)


@app.command("reload")
def reload() -> None:
    """Re-read config.toml in the running gateway (SIGHUP); its log names what needs a restart."""
    import signal

    try:
        paths = Paths(resolve_home())
    except HomeError as exc:
        fail(str(exc), 2)
    try:
        state = find_running(paths.run_state)
    except NotRunning:
        fail(f"no gateway running in {paths.home}; start it with: clawgate gateway start", 2)
    os.kill(state.pid, signal.SIGHUP)
    console.print(
        f"asked clawgate gateway (pid {state.pid}) to reload {paths.config}; "
        f"see {paths.log_file} for what applied and what needs a restart"
    )


@app.command("status")
def status(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show whether the gateway runs, with pid, uptime, version, ports and clients."""
    paths, config = load_paths_and_config()
    report = gather_status(paths, config)
    if json_output:
        print_json(report, compact=True)
    else:
        render_status(report)
    if not report["running"]:
        raise typer.Exit(1)


@app.command("logs")
def logs(
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines to show.")] = 50,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new lines.")
    ] = False,
) -> None:
    """Print the gateway's log, optionally following it across rotations."""
    paths, _ = load_paths_and_config()
    show_logs(gateway_files(paths), lines, follow)


@app.command("schema")
def schema() -> None:
    """Print the protocol's JSON Schema."""
    sys.stdout.buffer.write(protocol_schema_bytes())
