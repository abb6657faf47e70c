"""Running a plugin against a test gateway's socket (the example plugin, or any SDK plugin)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from examples.dir_integrations import DirIntegrations, build_plugin

from clawgate.plugin import Plugin

REGISTER_WAIT_S = 10.0


@asynccontextmanager
async def running(plugin: Plugin, socket: Path) -> AsyncIterator[Plugin]:
    """Run ``plugin`` against the gateway socket until the block ends."""
    task = asyncio.create_task(plugin.run(socket))
    try:
        await plugin.wait_registered(REGISTER_WAIT_S)
        yield plugin
    finally:
        await plugin.stop()
        await asyncio.gather(task, return_exceptions=True)


def dir_plugin(root: Path) -> Plugin:
    """The example plugin with fast reconnects."""
    return build_plugin(DirIntegrations(root), backoff_initial=0.05, backoff_max=0.2)
