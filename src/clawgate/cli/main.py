"""The `clawgate` command: one typer app, one module per command group.

`clawgate gateway run` is the daemon's own process, and what it imports stays resident
(idle RSS, issue 12 point 7): a plain `gateway run` command line goes straight to
`cli/gateway_run.py` without typer; one only typer can judge (help, an error) gets the
root with the `gateway` group alone. Any other command line gets the whole app.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

from .. import __version__

if TYPE_CHECKING:
    import typer

__all__ = ["build_app", "main"]


def _version(value: bool) -> None:
    if value:
        import typer

        print(f"clawgate {__version__}")
        raise typer.Exit()


def _root_app() -> typer.Typer:
    """Return the root command with its options and no command group yet."""
    import typer  # here: a plain `gateway run` never loads it

    def root(
        version: bool = typer.Option(
            False, "--version", callback=_version, is_eager=True, help="Print the version."
        ),
    ) -> None:
        """clawgate: a local gateway daemon for AI agents."""

    app = typer.Typer(
        name="clawgate",
        help="clawgate: a local gateway daemon for AI agents.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        # Plain click help, for every group below too: typer's rich help prints a `<bool>`
        # type on every flag (even --help), which reads as if the flag took a value.
        rich_markup_mode=None,
    )
    app.callback()(root)
    return app


@cache
def build_app() -> typer.Typer:
    """Return the whole `clawgate` app, every command group registered."""
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

    app = _root_app()
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
    return app


def _gateway_run_app() -> typer.Typer:
    """Return the root with only the `gateway` group: what `gateway run` parses with."""
    from . import gateway

    app = _root_app()
    app.add_typer(gateway.app, name="gateway")
    return app


def __getattr__(name: str) -> Any:
    """Build `app` on first access, so importing this module loads no command group."""
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _gateway_run(argv: list[str]) -> int:
    """Run `gateway run` with `argv`, its options, through typer only when they need it."""
    from .gateway_run import parse_run_options, run_foreground

    options = parse_run_options(argv)
    if options is None:
        return _run(_gateway_run_app())
    try:
        run_foreground(options)
    except (EOFError, KeyboardInterrupt):
        # What click prints for an interrupt the command did not handle, with its status.
        print("\nAborted!", file=sys.stderr)
        raise SystemExit(1) from None
    return 0


def _usage_message(exc: Exception) -> str:
    """Return a usage error as one line that names the help to read."""
    message = str(getattr(exc, "format_message", lambda: str(exc))()).strip()
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) or "clawgate"
    end = "" if message.endswith((".", "?")) else "."
    return f"{message}{end} See `{path} --help`."


def _named_metavars(command: Any) -> Any:
    """Show `--port PORT` and `METHOD` in help instead of typer's `<int range>`, `{method}`.

    Choices (enums) keep their `<a|b|c>` list: that one tells the reader what to type.
    """
    import enum

    for param in command.params:
        if param.metavar is not None or getattr(param, "is_flag", False):
            continue
        annotation = getattr(param.type_descriptor, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            continue
        param.metavar = (param.name or "value").upper()
    for sub in getattr(command, "commands", {}).values():
        _named_metavars(sub)
    return command


def _run(app: typer.Typer) -> int:
    """Run `app`; send usage errors and unexpected exceptions through `fail`."""
    import typer

    from ._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail

    # click's UsageError (a bad option, argument or command), reached through typer's public
    # BadParameter: typer >= 0.20 vendors click, so `import click` may find another copy.
    usage_error: type[Exception] = next(
        c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
    )
    try:
        command = _named_metavars(typer.main.get_command(app))
        result = command.main(prog_name="clawgate", standalone_mode=False)
    except usage_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            return EXIT_USAGE  # the group's help is already printed
        fail(_usage_message(exc), EXIT_USAGE)
    except typer.Abort:
        fail("aborted", EXIT_FAILED)
    except Exception as exc:
        if os.environ.get("CLAWGATE_DEBUG"):
            raise
        # A bug, not the user's doing: one line saying so, not a library's traceback.
        fail(
            f"unexpected error ({type(exc).__name__}: {exc}); "
            "run again with CLAWGATE_DEBUG=1 for the traceback and report it",
            EXIT_FAILED,
        )
    return result if isinstance(result, int) else EXIT_OK


def main() -> None:
    """Run the CLI; exit with a code from `_common`'s table, errors through `fail`."""
    if sys.argv[1:3] == ["gateway", "run"]:
        sys.exit(_gateway_run(sys.argv[3:]))
    sys.exit(_run(build_app()))
