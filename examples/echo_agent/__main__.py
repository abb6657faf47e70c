"""Run the echo-agent example plugin: ``python -m examples.echo_agent``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from .agent import build_plugin

__all__ = ["main"]


async def _run(socket_path: str | None, delay_s: float) -> None:
    """Serve until SIGINT or SIGTERM."""
    plugin = build_plugin(delay_s)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(plugin.stop()))
    await plugin.run(socket_path)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run the plugin."""
    parser = argparse.ArgumentParser(prog="echo_agent", description=__doc__)
    parser.add_argument("--socket", default=None, help="default: $CLAWGATE_HOME/gateway.sock")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between words")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    asyncio.run(_run(args.socket, args.delay))


if __name__ == "__main__":
    main()
