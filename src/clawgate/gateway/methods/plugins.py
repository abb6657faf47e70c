"""Operator views of local plugins and the offline command queue (read scope)."""

from __future__ import annotations

from typing import Any

from ...ipc.plugin_list import describe_plugins
from ...protocol.errors import Unavailable
from ...protocol.scopes import READ
from ..context import CallContext
from ..plugin_side import PluginSide
from ..registry import method
from ._common import EmptyParams, OpenResult, Result

__all__ = ["plugin_side", "plugins_list", "queue_list"]


class PluginEntry(Result):
    """A live plugin."""

    name: str
    version: str
    capabilities: list[str]
    connectedAt: str


class PluginsListResult(Result):
    """Result of `plugins.list`."""

    plugins: list[PluginEntry]


class QueuedCommand(OpenResult):
    """A command waiting for a plugin; never its params' secret values."""

    commandId: str
    name: str
    targetKey: str


class QueueListResult(Result):
    """Result of `queue.list`."""

    depth: int
    byTarget: dict[str, int]
    commands: list[QueuedCommand]


def plugin_side(ctx: CallContext) -> PluginSide:
    """Return the gateway's plugin side, or refuse the call when there is none."""
    side = ctx.services.plugins
    if side is None:
        raise Unavailable("this gateway serves no plugin socket; start it with a home")
    return side


@method("plugins.list", params=EmptyParams, result=PluginsListResult, scope=READ)
def plugins_list(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """List the plugins registered on the IPC socket."""
    return {"plugins": describe_plugins(plugin_side(ctx).registry)}


@method("queue.list", params=EmptyParams, result=QueueListResult, scope=READ)
def queue_list(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """List queued commands per target, in delivery order."""
    commands = plugin_side(ctx).commands
    return {
        "depth": commands.depth(),
        "byTarget": commands.by_target(),
        "commands": commands.list_queued(),
    }
