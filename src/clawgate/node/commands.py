"""The commands the headless node host serves, each `params -> payload` or a `CommandError`.

`system.run` is checked against this node's own `[exec]` policy before anything starts, so
the node refuses what it does not allow even when the gateway (or an operator) approved it.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from .. import __version__
from ..protocol.exec_approvals import ExecDecision, ExecMode, ExecPolicy, command_text
from .config import NodeConfig
from .process import run_program

__all__ = ["CANVAS_COMMANDS", "COMMANDS", "CommandError", "NodeCommands"]

logger = logging.getLogger(__name__)

CANVAS_COMMANDS: Final = (
    "canvas.present",
    "canvas.hide",
    "canvas.navigate",
    "canvas.eval",
    "canvas.snapshot",
)
#: Every command this node host declares, in the order it declares them.
COMMANDS: Final = (
    "system.run",
    "system.which",
    "system.notify",
    "device.info",
    "device.status",
    "location.get",
    *CANVAS_COMMANDS,
)
CAPS: Final = ("system", "device", "location", "canvas")

Handler = Callable[[Any], Awaitable[Any]]


class CommandError(Exception):
    """A command failed with a code the operator sees in `details.nodeError`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class NodeCommands:
    """The node host's command handlers, bound to its config and environment."""

    config: NodeConfig
    environ: Mapping[str, str]
    started_monotonic: float

    @classmethod
    def create(cls, config: NodeConfig) -> NodeCommands:
        """Bind the handlers to `config` and this process's environment."""
        return cls(config, dict(os.environ), time.monotonic())

    def handler(self, command: str) -> Handler | None:
        """Return the handler of `command`, or None when this node does not serve it."""
        if command in CANVAS_COMMANDS:
            return self.canvas
        return {
            "system.run": self.system_run,
            "system.which": self.system_which,
            "system.notify": self.system_notify,
            "device.info": self.device_info,
            "device.status": self.device_status,
            "location.get": self.location_get,
        }.get(command)

    # -- system ---------------------------------------------------------------------

    def _env(self, requested: Any) -> dict[str, str]:
        allowed = set(self.config.exec.env_allow)
        env = {k: v for k, v in self.environ.items() if k in allowed}
        if isinstance(requested, dict):
            for key, value in requested.items():
                if key in allowed and isinstance(value, str):
                    env[key] = value
                else:
                    logger.info("system.run: environment variable %s not allowed; dropped", key)
        return env

    def local_policy(self) -> ExecPolicy:
        """Return this node's own exec policy (`[exec]` in node.toml)."""
        section = self.config.exec
        return ExecPolicy(ExecMode(section.mode), tuple(tuple(p) for p in section.allow))

    async def system_run(self, params: Any) -> dict[str, Any]:
        """Run argv (OpenClaw's `{command: [...], cwd?, env?, timeoutMs?}`) without a shell."""
        if not isinstance(params, dict):
            raise CommandError("INVALID_REQUEST", "params must be an object")
        argv = params.get("command")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise CommandError("INVALID_REQUEST", "command must be a non-empty argv list")
        if self.local_policy().decide(argv) is not ExecDecision.ALLOW:
            logger.warning(
                "system.run refused by this node's [exec] policy: %s", command_text(argv)
            )
            raise CommandError(
                "SYSTEM_RUN_DENIED",
                "refused by this node's own [exec] policy; allow the argv in its node.toml",
            )
        cwd = params.get("cwd") if isinstance(params.get("cwd"), str) else None
        section = self.config.exec
        timeout_ms = params.get("timeoutMs")
        if not isinstance(timeout_ms, int) or timeout_ms <= 0:
            timeout_ms = section.timeout_ms
        timeout_ms = min(timeout_ms, section.timeout_ms)
        logger.info("system.run: %s", command_text(argv))
        try:
            result = await run_program(
                argv,
                cwd=cwd,
                env=self._env(params.get("env")),
                timeout_s=timeout_ms / 1000,
                output_cap=section.output_max_bytes,
            )
        except OSError as exc:
            message = f"cannot start {argv[0]}: {exc.strerror or exc}"
            raise CommandError("INVALID_REQUEST", message) from None
        return {
            "exitCode": result.exit_code,
            "timedOut": result.timed_out,
            "success": result.exit_code == 0 and not result.timed_out,
            "stdout": result.stdout.decode("utf-8", errors="replace"),
            "stderr": result.stderr.decode("utf-8", errors="replace"),
            "error": "timed out" if result.timed_out else None,
            "truncated": result.truncated,
        }

    async def system_which(self, params: Any) -> dict[str, Any]:
        """Resolve program names on the node's PATH (OpenClaw's `{bins: [...]}`)."""
        bins = params.get("bins") if isinstance(params, dict) else None
        if not isinstance(bins, list) or not all(isinstance(b, str) for b in bins):
            raise CommandError("INVALID_REQUEST", "bins must be a list of program names")
        path = self._env(None).get("PATH")
        found = {name: where for name in bins if (where := shutil.which(name, path=path))}
        return {"bins": found}

    async def system_notify(self, params: Any) -> dict[str, Any]:
        """Show a desktop notification with `notify-send`, or log it where there is none."""
        params = params if isinstance(params, dict) else {}
        title = str(params.get("title") or "clawgate")
        body = str(params.get("body") or params.get("message") or "")
        sender = shutil.which("notify-send", path=self._env(None).get("PATH"))
        if sender is None:
            logger.info("notification (no notify-send here): %s: %s", title, body)
            return {"ok": True, "delivered": False}
        result = await run_program(
            [sender, "--", title, body],
            cwd=None,
            env=self._env(None),
            timeout_s=10,
            output_cap=4096,
        )
        return {"ok": True, "delivered": result.exit_code == 0}

    # -- device ---------------------------------------------------------------------

    async def device_info(self, params: Any) -> dict[str, Any]:
        """Describe this machine."""
        return {
            "hostname": socket.gethostname(),
            "platform": sys.platform,
            "osVersion": platform.release(),
            "arch": platform.machine(),
            "version": __version__,
        }

    async def device_status(self, params: Any) -> dict[str, Any]:
        """Report load, CPUs and how long this node host has run."""
        status: dict[str, Any] = {
            "cpuCount": os.cpu_count() or 1,
            "uptimeMs": int((time.monotonic() - self.started_monotonic) * 1000),
        }
        if hasattr(os, "getloadavg"):
            status["loadAverage"] = list(os.getloadavg())
        return status

    async def location_get(self, params: Any) -> dict[str, Any]:
        """Report the location configured in node.toml."""
        location = self.config.location
        if location is None:
            raise CommandError(
                "LOCATION_UNAVAILABLE",
                "this node has no location; set [location] latitude and longitude in node.toml",
            )
        return {
            "lat": location.latitude,
            "lon": location.longitude,
            "accuracyMeters": location.accuracy_m,
            "source": "config",
        }

    async def canvas(self, params: Any) -> dict[str, Any]:
        """Refuse clearly: a headless node has no screen to show a canvas on."""
        raise CommandError(
            "UNAVAILABLE",
            "this headless node has no display to show a canvas; present it on a node with a "
            "screen (the gateway's canvas host serves the page to it)",
        )
