"""Operator views of local plugins and the offline command queue (read scope)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from ...ipc.plugin_list import describe_plugins
from ...protocol.errors import InvalidRequest, Unavailable
from ...protocol.scopes import READ
from ..context import CallContext
from ..plugin_side import PluginSide
from ..registry import method
from ._common import EmptyParams, OpenResult, Params, Result

__all__ = ["plugin_side", "plugins_catalog_browse", "plugins_list", "queue_list"]


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


class CatalogBrowseParams(Params):
    """Params of `plugins.catalog.browse` (OpenClaw 2026.9.6's)."""

    query: Annotated[str, StringConstraints(max_length=200)] | None = None
    searchSource: Literal["openclaw-control-ui"] | None = None
    intent: Literal["all", "bundled", "trending", "official", "featured"] | None = None
    category: (
        Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9-]*$")]
        | None
    ) = None
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    pageSize: Annotated[int, Field(ge=1, le=100)] | None = None


class CatalogBrowseResult(Result):
    """Result of `plugins.catalog.browse`: no entry, no category (see the handler)."""

    items: list[dict[str, Any]]
    categories: list[dict[str, Any]]


@method(
    "plugins.catalog.browse",
    params=CatalogBrowseParams,
    result=CatalogBrowseResult,
    scope=READ,
)
def plugins_catalog_browse(ctx: CallContext, params: CatalogBrowseParams) -> dict[str, Any]:
    """Browse installable plugins: none, since clawgate has no plugin catalog.

    OpenClaw's catalog is ClawHub's packages joined with the installed ones; clawgate installs
    nothing through the gateway (its plugins are processes that connect to the plugin socket,
    listed by `plugins.list`), so every page, search and category is empty.
    """
    if params.query and params.query.strip() and params.cursor:
        raise InvalidRequest("a plugin search takes no cursor; search again without it")
    return {"items": [], "categories": []}


@method("queue.list", params=EmptyParams, result=QueueListResult, scope=READ)
def queue_list(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """List queued commands per target, in delivery order."""
    commands = plugin_side(ctx).commands
    return {
        "depth": commands.depth(),
        "byTarget": commands.by_target(),
        "commands": commands.list_queued(),
    }
