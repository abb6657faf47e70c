"""A plugin process for the command benchmark, built on the plugin SDK like any plugin.

Run as `python -m bench.ipc_plugin --socket PATH --name NAME --capability CAP...`. It registers
with the `CAP`s, answers every `command.execute` at once with `{"result": {"n": params.n}}` and
runs until SIGTERM or SIGINT. It does no work of its own, so the figures measure the daemon,
the socket and the SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import Any

import uvloop

from clawgate.plugin import Plugin

__all__ = ["build_plugin", "main"]


def build_plugin(name: str, capabilities: list[str]) -> Plugin:
    """Return a plugin that echoes each command's `params.n` as its result."""
    plugin = Plugin(name, version="1.0.0", capabilities=capabilities, backoff_initial=0.05)

    @plugin.handler("command.execute")
    async def execute(params: dict[str, Any]) -> dict[str, Any]:
        """Finish the command at once."""
        return {"result": {"n": params.get("params", {}).get("n")}}

    return plugin


async def _run(socket_path: Path, name: str, capabilities: list[str]) -> None:
    """Serve until a signal asks to stop."""
    plugin = build_plugin(name, capabilities)
    stopping: set[asyncio.Task[None]] = set()

    def stop() -> None:
        """Start `plugin.stop()`; `run` returns once it is done."""
        stopping.add(asyncio.create_task(plugin.stop()))

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    await plugin.run(socket_path)
    await asyncio.gather(*stopping)


def main() -> None:
    """Parse arguments and run one plugin."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--capability", action="append", required=True)
    args = parser.parse_args()
    uvloop.run(_run(args.socket, args.name, args.capability))


if __name__ == "__main__":
    main()
