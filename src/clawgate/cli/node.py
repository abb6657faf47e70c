"""`clawgate node run|install|uninstall|status`: this machine as a node of a gateway."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..config import TOKEN_ENV
from ..service.paths import HomeError, resolve_home
from ._common import fail

if TYPE_CHECKING:
    from ..node import NodeConfig, NodePaths

__all__ = ["app"]

app = typer.Typer(help="Run this machine as a node of a gateway.", no_args_is_help=True)

UrlArg = Annotated[
    str | None, typer.Option("--url", help="Gateway WebSocket URL, e.g. ws://HOST:18789.")
]
TokenArg = Annotated[
    str | None,
    typer.Option("--token", help=f"Gateway token (default: ${TOKEN_ENV}, then node.toml)."),
]
HomeArg = Annotated[
    Path | None,
    typer.Option("--home", help="clawgate home (default: $CLAWGATE_HOME or ~/.clawgate)."),
]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Print the unit file and what would be done.")
]


def _home(home: Path | None) -> Path:
    try:
        return home.expanduser().absolute() if home is not None else resolve_home()
    except HomeError as exc:
        fail(str(exc), 2)


def _load(home: Path) -> tuple[NodePaths, NodeConfig]:
    from ..node import NodeConfigError, NodePaths, load_node_config

    paths = NodePaths.in_home(home)
    try:
        return paths, load_node_config(paths.config)
    except NodeConfigError as exc:
        fail(str(exc), 2)


@app.command("run")
def run(url: UrlArg = None, token: TokenArg = None, home: HomeArg = None) -> None:
    """Connect as a node, pair, serve commands; reconnect with backoff until stopped."""
    from ..client import DeviceTokenStore, IdentityError, load_or_create_identity
    from ..node import NodeCommands, NodeHost, NodeHostError, NodeHostOptions

    paths, config = _load(_home(home))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("clawgate.client").setLevel(logging.WARNING)
    try:
        paths.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        identity = load_or_create_identity(paths.root)
        tokens = DeviceTokenStore.in_home(paths.root, identity)
    except (IdentityError, OSError) as exc:
        fail(f"cannot load the node identity in {paths.root}: {exc}", 2)
    options = NodeHostOptions(
        url=url or config.gateway.url,
        token=token or os.environ.get(TOKEN_ENV) or config.gateway.token,
        display_name=config.display_name or socket.gethostname(),
    )
    host = NodeHost(options, identity, tokens, NodeCommands.create(config), say=_say)
    _say(f"node {identity.device_id} (home {paths.root}) connecting to {options.url}")
    try:
        asyncio.run(_serve_until_signal(host))
    except NodeHostError as exc:
        fail(str(exc), 2)


def _say(line: str) -> None:
    print(line, flush=True)


async def _serve_until_signal(host: object) -> None:
    import signal

    from ..node import NodeHost

    assert isinstance(host, NodeHost)
    task = asyncio.create_task(host.run())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        _say("node host stopped")


def _installer() -> object:
    from ..service.installer import ServiceInstaller, subprocess_runner
    from ..service.units import NODE_SERVICE

    uid = os.getuid() if hasattr(os, "getuid") else -1
    return ServiceInstaller(sys.platform, Path.home(), subprocess_runner, uid, NODE_SERVICE)


@app.command("install")
def install(
    url: UrlArg = None, token: TokenArg = None, home: HomeArg = None, dry_run: DryRun = False
) -> None:
    """Start the node host at login (systemd user unit / launchd agent)."""
    from ..node import save_gateway_target
    from ..service.installer import ServiceError, ServiceInstaller
    from ..service.units import NODE_SERVICE, ServiceSpec, default_program

    chosen = _home(home)
    paths, config = _load(chosen)
    if not dry_run and (url is not None or token is not None):
        # The unit holds no secret: the token goes to the node's own 0600 node.toml.
        save_gateway_target(paths.config, url or config.gateway.url, token)
        print(f"wrote the gateway URL{' and token' if token else ''} to {paths.config}")
    spec = ServiceSpec(
        default_program(), chosen, home_is_default=chosen == resolve_home({}), kind=NODE_SERVICE
    )
    installer = _installer()
    assert isinstance(installer, ServiceInstaller)
    try:
        report = installer.install(spec, dry_run=dry_run)
    except ServiceError as exc:
        fail(str(exc), 2)
    if report.dry_run:
        sys.stdout.write(report.content)
    for line in report.lines:
        print(line, file=sys.stderr if report.dry_run else sys.stdout)


@app.command("uninstall")
def uninstall(dry_run: DryRun = False) -> None:
    """Stop the node host's login service and remove its unit file."""
    from ..service.installer import ServiceError, ServiceInstaller

    installer = _installer()
    assert isinstance(installer, ServiceInstaller)
    try:
        report = installer.uninstall(dry_run=dry_run)
    except ServiceError as exc:
        fail(str(exc), 2)
    for line in report.lines:
        print(line)


@app.command("status")
def status(home: HomeArg = None) -> None:
    """Show this node's id, its gateway, its local exec policy and its login service."""
    from ..client import IdentityError, load_or_create_identity
    from ..service.installer import ServiceError, ServiceInstaller

    paths, config = _load(_home(home))
    print(f"home:      {paths.root}")
    if not paths.root.is_dir():
        print("node id:   none yet (the first `clawgate node run` creates it)")
    else:
        try:
            print(f"node id:   {load_or_create_identity(paths.root).device_id}")
        except IdentityError as exc:
            fail(str(exc), 2)
    print(f"gateway:   {config.gateway.url}")
    allow = len(config.exec.allow)
    print(f"exec:      {config.exec.mode} ({allow} allowed argv pattern{'s' * (allow != 1)})")
    installer = _installer()
    assert isinstance(installer, ServiceInstaller)
    try:
        unit = installer.installed_unit()
    except ServiceError as exc:
        fail(str(exc), 2)
    print(f"service:   {'installed at ' + str(unit.path) if unit else 'not installed'}")
