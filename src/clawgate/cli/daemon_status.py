"""`clawgate gateway status`: what a supervisor or a person wants to know at a glance."""

from __future__ import annotations

import re
import ssl
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from ..config import ClawgateConfig, ConfigError
from ..files import running_pid
from ..service.paths import Paths
from ..service.runtime import resolve_tls
from ..tls import pinned_client_context
from ._common import ProbeFailed, ask_gateway, console

if TYPE_CHECKING:
    from ..client import GatewayClient

__all__ = ["gather_status", "render_status"]

_CONNECTIONS = re.compile(rb"^clawgate_connections (\S+)$", re.MULTILINE)


def _http_get(url: str, context: ssl.SSLContext | None) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            body: bytes = response.read()
            return body
    except (urllib.error.URLError, OSError):
        return None


def _runtime_facts(url: str, config: ClawgateConfig, pin: str | None) -> dict[str, Any] | None:
    """Ask the running gateway its version, plugins, queue and link, if we can log in."""

    async def ask(client: GatewayClient) -> dict[str, Any]:
        status = await client.call("status", timeout=3)
        facts: dict[str, Any] = {"version": str(status["runtimeVersion"])}
        if "plugins.list" in (client.hello or {}).get("features", {}).get("methods", []):
            plugins = await client.call("plugins.list", timeout=3)
            queue = await client.call("queue.list", timeout=3)
            facts["plugins"] = [plugin["name"] for plugin in plugins["plugins"]]
            facts["queueDepth"] = queue["depth"]
        if config.cloud.url:
            facts["cloud"] = await client.call("cloud.status", timeout=3)
        return facts

    try:
        return ask_gateway(config, pin, ask)
    except ProbeFailed:
        return None


def _running_port(paths: Paths) -> int | None:
    """Return the port the verified running gateway recorded, or None."""
    from ..service.runstate import NotRunning, find_running

    try:
        return find_running(paths.run_state).port
    except NotRunning:
        return None


def gather_status(paths: Paths, config: ClawgateConfig) -> dict[str, Any]:
    """Collect the daemon's state from its lock, its process and its HTTP endpoints."""
    # The port it actually listens on (`--port`, `gateway start --port`), else config's;
    # credentials go only to a gateway that proved it is this home's (see service/runstate.py).
    verified = _running_port(paths)
    port = verified or config.gateway.port
    report: dict[str, Any] = {"running": False}
    try:
        tls = resolve_tls(config, paths, generate=False)
    except ConfigError as exc:
        tls = None
        report["tls"] = {"enabled": True, "error": str(exc)}
    context = pinned_client_context(tls) if tls else None
    http = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    report.update(
        {
            "home": str(paths.home),
            "logFile": str(paths.log_file),
            "url": f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/",
            "ports": {"gateway": port},
            "webchat": f"{http}/",
            "auth": config.gateway.auth.mode.value,
            "cloud": {"state": "not configured" if not config.cloud.url else "unknown"},
        }
    )
    if tls is not None:
        report["tls"] = {
            "enabled": True,
            "fingerprint": tls.fingerprint,
            "cert": str(tls.cert_path),
        }
    pid = running_pid(paths.pid_file)
    if pid is None:
        return report
    report["running"] = True
    report["pid"] = pid or None
    if pid:
        import psutil  # only `status` needs it; the gateway process never loads it

        try:
            process = psutil.Process(pid)
            report["uptimeS"] = round(time.time() - process.create_time())
            report["rssBytes"] = process.memory_info().rss
        except psutil.Error:
            pass
    ready = _http_get(f"{http}/readyz", context)
    report["ready"] = ready is not None and b'"ready":true' in ready.replace(b" ", b"")
    metrics = _http_get(f"{http}/metrics", context)
    if metrics is not None:
        match = _CONNECTIONS.search(metrics)
        if match:
            report["clients"] = int(float(match.group(1)))
    pin = tls.fingerprint if tls else None
    facts = _runtime_facts(report["url"], config, pin) if report["ready"] and verified else None
    if facts is not None:
        report.update(facts)
    return report


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h {minutes}m {seconds}s" if hours else f"{minutes}m {seconds}s"


def _cloud_line(cloud: dict[str, Any]) -> str:
    from rich.markup import escape

    state = str(cloud["state"]).replace("_", " ")
    if cloud.get("since") and cloud["state"] != "not configured":
        state += f" since {cloud['since']}"
    if cloud.get("lastError"):
        state += f" (last error: {cloud['lastError']})"
    return escape(state)


def render_status(report: dict[str, Any]) -> None:
    """Print the report as a table."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="clawgate gateway", show_header=False)
    table.add_row("state", "[green]running[/]" if report["running"] else "[red]not running[/]")
    if report["running"]:
        table.add_row("pid", str(report.get("pid") or "unknown"))
        if "uptimeS" in report:
            table.add_row("uptime", _duration(report["uptimeS"]))
        table.add_row("version", report.get("version", "unknown (cannot log in)"))
        table.add_row("ready", "yes" if report.get("ready") else "no")
        table.add_row("clients", str(report.get("clients", "unknown")))
        if "plugins" in report:
            table.add_row("plugins", ", ".join(report["plugins"]) or "none registered")
            table.add_row("queued commands", str(report["queueDepth"]))
        if "rssBytes" in report:
            table.add_row("memory", f"{report['rssBytes'] / 1_048_576:.1f} MiB")
    table.add_row("url", report["url"])
    table.add_row("WebChat", report["webchat"])
    if report["auth"] == "token":
        table.add_row("token", "`clawgate dashboard` prints the WebChat link with it")
    elif report["auth"] == "password":
        table.add_row("password", "the WebChat page asks for it")
    if "tls" in report:
        tls = report["tls"]
        table.add_row(
            "TLS SHA-256", tls.get("fingerprint") or f"[red]{escape(str(tls.get('error')))}[/]"
        )
    table.add_row("cloud link", _cloud_line(report["cloud"]))
    if report["cloud"].get("daemonId"):
        # The id `clawgate hub daemon ID` takes on the hub; whole, so that it can be copied.
        table.add_row("hub daemon id", escape(report["cloud"]["daemonId"]))
    table.add_row("home", report["home"])
    table.add_row("log", report["logFile"])
    console.print(table)
