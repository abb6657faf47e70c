"""The `clawgate` command: one typer app, one module per command group."""

from __future__ import annotations

import typer

from .. import __version__
from . import (
    approvals,
    call,
    channels,
    chat,
    config,
    cron,
    devices,
    doctor,
    gateway,
    hub,
    integrations,
    node,
    nodes,
    plugins,
    ui,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="clawgate",
    help="clawgate: a local gateway daemon for AI agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(gateway.app, name="gateway")
app.add_typer(config.app, name="config")
app.add_typer(devices.app, name="devices")
app.add_typer(cron.app, name="cron")
app.add_typer(integrations.app, name="integrations")
app.add_typer(integrations.manifest_app, name="manifest")
app.add_typer(hub.app, name="hub")
app.add_typer(ui.app, name="ui")
app.add_typer(node.app, name="node")
app.add_typer(nodes.app, name="nodes")
app.add_typer(approvals.app, name="approvals")
app.add_typer(channels.app, name="channels")
app.add_typer(channels.pairing_app, name="pairing")
app.add_typer(channels.message_app, name="message")
app.command("call")(call.call)
app.command("health")(call.health)
app.command("status")(call.status)
app.command("doctor")(doctor.doctor)
app.command("chat")(chat.chat)
app.command("agent")(chat.agent)
app.command("dashboard")(chat.dashboard)
app.command("plugins")(plugins.plugins)
app.command("queue")(plugins.queue)


def _version(value: bool) -> None:
    if value:
        print(f"clawgate {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """clawgate: a local gateway daemon for AI agents."""


def main() -> None:
    """Run the CLI."""
    app()
