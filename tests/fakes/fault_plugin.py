"""The dir-integrations example plugin, instrumented for fault tests.

Run as ``python -m tests.fakes.fault_plugin --root DIR [--step-delay S]`` with
``CLAWGATE_HOME`` set and the repository root on ``PYTHONPATH``. It behaves like
``examples.dir_integrations`` with two additions:

- every ``command.execute`` delivery is appended to ``<root>/.deliveries`` (one JSON line:
  ``commandId``, ``attempt``, ``idempotencyKey``) *before* the example's at-most-once check,
  so a command the daemon delivers twice shows up twice even though it runs once;
- ``--step-delay`` makes every ``integration.install|configure|activate`` wait first, so a
  test can kill the daemon in the middle of a reconciliation pass; ``--exec-delay`` does the
  same for ``command.execute`` (after the run is recorded), so commands are in flight then.

It reconnects quickly (backoff ceiling 0.5 s) so restarts of the daemon cost little time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any, Final

from examples.dir_integrations import DirIntegrations, build_plugin

__all__ = ["DELIVERIES", "InstrumentedIntegrations", "main"]

DELIVERIES: Final = ".deliveries"


class InstrumentedIntegrations(DirIntegrations):
    """``DirIntegrations`` that logs every delivery and can take its time over steps."""

    def __init__(self, root: Path, step_delay_s: float = 0.0, exec_delay_s: float = 0.0) -> None:
        super().__init__(root)
        self.step_delay_s = step_delay_s
        self.exec_delay_s = exec_delay_s

    async def execute(self, params: dict[str, Any]) -> dict[str, Any]:
        """Log the delivery, then run the command at most once per commandId."""
        line = {
            "commandId": params.get("commandId"),
            "attempt": params.get("attempt"),
            "idempotencyKey": params.get("idempotencyKey"),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / DELIVERIES).open("a") as log:
            log.write(json.dumps(line) + "\n")
            log.flush()
            os.fsync(log.fileno())
        answer = await super().execute(params)
        if self.exec_delay_s > 0:
            # The run is on disk but unanswered: a daemon killed now must redeliver it.
            await asyncio.sleep(self.exec_delay_s)
        return answer

    async def _slow(self) -> None:
        if self.step_delay_s > 0:
            await asyncio.sleep(self.step_delay_s)

    async def install(self, params: dict[str, Any]) -> dict[str, Any]:
        """Install after the step delay."""
        await self._slow()
        return await super().install(params)

    async def configure(self, params: dict[str, Any]) -> dict[str, Any]:
        """Configure after the step delay."""
        await self._slow()
        return await super().configure(params)

    async def activate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Activate after the step delay."""
        await self._slow()
        return await super().activate(params)


async def _run(root: Path, step_delay_s: float, exec_delay_s: float) -> None:
    store = InstrumentedIntegrations(root, step_delay_s, exec_delay_s)
    plugin = build_plugin(store, backoff_initial=0.05, backoff_max=0.5)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(plugin.stop()))
    await plugin.run()


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve until SIGTERM."""
    parser = argparse.ArgumentParser(prog="fault_plugin", description=__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--step-delay", type=float, default=0.0)
    parser.add_argument("--exec-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    asyncio.run(_run(Path(args.root), args.step_delay, args.exec_delay))


if __name__ == "__main__":
    main()
