"""Run the dir-integrations example plugin: ``python -m examples.dir_integrations --root DIR``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from .store import DirIntegrations, build_plugin

__all__ = ["main"]


async def _run(root: Path, socket_path: str | None) -> None:
    """Serve until SIGINT or SIGTERM."""
    plugin = build_plugin(DirIntegrations(root))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(plugin.stop()))
    await plugin.run(socket_path)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the plugin."""
    parser = argparse.ArgumentParser(prog="dir_integrations", description=__doc__)
    parser.add_argument("--root", default=os.environ.get("DIR_INTEGRATIONS_ROOT"))
    parser.add_argument("--socket", default=None, help="default: $CLAWGATE_HOME/gateway.sock")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not args.root:
        parser.error("--root or DIR_INTEGRATIONS_ROOT is required")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    asyncio.run(_run(Path(args.root), args.socket))


if __name__ == "__main__":
    main()
