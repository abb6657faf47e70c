"""`clawgate doctor`: named checks, each ok/warn/fail with one line of how to fix it.

Every probe of the world (HTTP, sockets, disk, service manager, clock of versions) is
injected through `DoctorProbes`, so tests seed a fault and see the check catch it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import ssl
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from ..config import ClawgateConfig, ConfigError, load_config
from ..files import recorded_pid, running_pid
from ..store import inspect_store
from ..tls import pinned_client_context
from .installer import InstalledUnit, ServiceManager
from .paths import Paths
from .ports import port_holder
from .runtime import resolve_tls
from .units import ServiceSpec

__all__ = ["CheckResult", "DoctorProbes", "Status", "run_checks"]

MIN_PYTHON: Final = (3, 11)
DISK_WARN_BYTES: Final = 500 * 1024 * 1024
DISK_FAIL_BYTES: Final = 50 * 1024 * 1024


class Status(StrEnum):
    """How a check came out."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check: its name, status, what was found and how to fix it."""

    name: str
    status: Status
    message: str
    fix: str = ""


def _http_ok(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _channel_problem(channel: str, options: dict[str, Any], secret: str) -> str | None:
    """Ask the platform whether the credential works; return the problem, or None."""
    if channel == "irc":
        host, port = options["server"], options["port"]
        return None if _tcp_reachable(host, port) else f"cannot reach {host}:{port}"
    if channel == "matrix":
        return _matrix_problem(options, secret)
    if channel == "slack":
        return _slack_problem(options, secret)
    if channel == "discord":
        return _discord_problem(options, secret)
    if channel == "whatsapp" and options.get("mode") == "cloud":
        return _whatsapp_problem(options, secret)
    if channel == "imessage":
        return _imessage_problem(options, secret)
    if channel == "signal":
        return _signal_problem(options)
    if channel != "telegram":
        return None
    url = f"{options['api_base']}/bot{secret}/getMe"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            return "Telegram refused the bot token (401 Unauthorized)"
        return f"Telegram answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"cannot reach {options['api_base']} ({reason})"
    return None if body.get("ok") else "Telegram did not accept getMe"


def _matrix_problem(options: dict[str, Any], secret: str) -> str | None:
    """Check a Matrix access token with `whoami` (a password: only that the server answers)."""
    base = options["homeserver"]
    token = options["auth"] == "access_token"
    path = "/_matrix/client/v3/account/whoami" if token else "/_matrix/client/versions"
    request = urllib.request.Request(f"{base}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {secret}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            return "the homeserver refused the access token (401)"
        return f"the homeserver answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"cannot reach {base} ({getattr(exc, 'reason', exc)})"
    if token and body.get("user_id") != options["user_id"]:
        return f"the access token belongs to {body.get('user_id')}, not {options['user_id']}"
    return None


def _slack_problem(options: dict[str, Any], secret: str) -> str | None:
    """Check the bot token with `auth.test` and that the mode's other secret is set."""
    if options.get("mode") == "events":
        if not options.get("signing_secret"):
            return f"no signing secret (events mode): {options.get('signing_secret_source', '')}"
    elif not options.get("app_token"):
        return f"no app-level token (xapp-): {options.get('app_token_source', '')}"
    request = urllib.request.Request(f"{options['api_base']}auth.test", data=b"", method="POST")
    request.add_header("Authorization", f"Bearer {secret}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return f"Slack answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"cannot reach {options['api_base']} ({getattr(exc, 'reason', exc)})"
    return None if body.get("ok") else f"Slack refused the bot token ({body.get('error')})"


def _discord_problem(options: dict[str, Any], secret: str) -> str | None:
    """Check the bot token with `GET /users/@me`."""
    request = urllib.request.Request(f"{options['api_base']}/users/@me")
    request.add_header("Authorization", f"Bot {secret}")
    request.add_header("User-Agent", "DiscordBot (https://github.com/clawgate/clawgate, 1)")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            return "Discord refused the bot token (401 Unauthorized)"
        return f"Discord answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"cannot reach {options['api_base']} ({getattr(exc, 'reason', exc)})"
    return None if isinstance(body, dict) and body.get("bot") else "the token is not a bot's"


def _whatsapp_problem(options: dict[str, Any], secret: str) -> str | None:
    """Check the access token and phone number id with `GET /{phone-number-id}`."""
    for key in ("app_secret", "verify_token"):
        if not options.get(key):
            return f"no {key.replace('_', ' ')}: {options.get(f'{key}_source', '')}"
    if not options.get("phone_number_id"):
        return "no phone_number_id in [channels.whatsapp]"
    url = f"{options['graph_base']}/{options['phone_number_id']}?fields=id"
    request = urllib.request.Request(url)
    request.add_header("Authorization", f"Bearer {secret}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        try:
            code = json.loads(exc.read()).get("error", {}).get("code")
        except (ValueError, AttributeError, OSError):
            code = None
        if exc.code == 401 or code == 190:
            return "Meta refused the access token (code 190)"
        return f"the Graph API answered HTTP {exc.code}" + (f", code {code}" if code else "")
    except (urllib.error.URLError, OSError) as exc:
        return f"cannot reach {options['graph_base']} ({getattr(exc, 'reason', exc)})"
    return None


def _imessage_problem(options: dict[str, Any], secret: str) -> str | None:
    """Check the BlueBubbles server password with `GET /api/v1/ping`."""
    base = options.get("server_url") or ""
    if not base:
        return "no server_url: the BlueBubbles server's URL"
    query = urllib.parse.urlencode({"guid": secret})
    try:
        with urllib.request.urlopen(f"{base}/api/v1/ping?{query}", timeout=5) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            return "the BlueBubbles server refused the password (401)"
        return f"the BlueBubbles server answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"cannot reach {base} ({getattr(exc, 'reason', type(exc).__name__)})"
    return None


def _signal_problem(options: dict[str, Any]) -> str | None:
    """Ask the signal-cli daemon (`listGroups`) whether it holds the account."""
    url, number = options["http_url"], options["account"]
    body = {"jsonrpc": "2.0", "method": "listGroups", "params": {"account": number}, "id": 1}
    request = urllib.request.Request(
        f"{url}/api/v1/rpc", data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return f"signal-cli answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"cannot reach signal-cli at {url} ({getattr(exc, 'reason', exc)})"
    error = answer.get("error") if isinstance(answer, dict) else None
    if error:
        message = error.get("message") if isinstance(error, dict) else error
        return f"signal-cli refused the account {number} ({message}); link or register it"
    return None


def _tcp_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


@dataclass(slots=True)
class DoctorProbes:
    """The world as the checks see it; tests replace any of these."""

    python_version: tuple[int, int] = field(default_factory=lambda: sys.version_info[:2])
    http_ok: Callable[[str, ssl.SSLContext | None], bool] = _http_ok
    tcp_reachable: Callable[[str, int], bool] = _tcp_reachable
    port_holder: Callable[[int], str | None] = port_holder
    free_bytes: Callable[[Path], int] = lambda path: shutil.disk_usage(path).free
    installed_unit: Callable[[], InstalledUnit | None] = lambda: None
    expected_service: Callable[[], ServiceSpec | None] = lambda: None
    gateway_health: Callable[[str, ClawgateConfig, str | None], str | None] = (
        lambda url, config, pin: None
    )
    # The running gateway's `cloud.status`, or None when it cannot be asked.
    link_status: Callable[[str, ClawgateConfig, str | None], dict[str, Any] | None] = (
        lambda url, config, pin: None
    )
    module_available: Callable[[str], bool] = _module_available
    # (channel, its options, its secret) -> the problem reaching the platform, or None.
    channel_problem: Callable[[str, dict[str, Any], str], str | None] = _channel_problem


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def check_python(probes: DoctorProbes) -> CheckResult:
    """Python is new enough."""
    major, minor = probes.python_version
    if (major, minor) >= MIN_PYTHON:
        return CheckResult("python", Status.OK, f"Python {major}.{minor}")
    return CheckResult(
        "python", Status.FAIL, f"Python {major}.{minor} is too old", "install Python 3.11 or newer"
    )


def check_config(paths: Paths) -> tuple[CheckResult, ClawgateConfig | None]:
    """The config file parses and validates."""
    try:
        config = load_config(paths.config)
    except ConfigError as exc:
        return CheckResult("config", Status.FAIL, str(exc), "fix the key named above"), None
    where = str(paths.config) if paths.config.exists() else "no config file (defaults)"
    return CheckResult("config", Status.OK, f"valid: {where}"), config


def check_permissions(paths: Paths) -> CheckResult:
    """The home is 0700 and the files in it are 0600."""
    if not paths.home.exists():
        return CheckResult("permissions", Status.SKIP, f"{paths.home} does not exist yet")
    problems = []
    if _mode(paths.home) & 0o077:
        problems.append((f"{paths.home} is {oct(_mode(paths.home))}", f"chmod 700 {paths.home}"))
    for path in (paths.config, paths.state_db, paths.log_file, paths.pid_file):
        if path.exists() and _mode(path) & 0o077:
            problems.append((f"{path} is {oct(_mode(path))}", f"chmod 600 {path}"))
    if not problems:
        return CheckResult("permissions", Status.OK, "home 0700, files 0600")
    found, fix = problems[0]
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return CheckResult("permissions", Status.FAIL, f"{found}{more}", fix)


def check_pid_file(paths: Paths) -> CheckResult:
    """The PID file agrees with the process that holds its lock."""
    holder = running_pid(paths.pid_file)
    if holder is not None:
        return CheckResult("pid file", Status.OK, f"gateway running (pid {holder or 'unknown'})")
    stale = recorded_pid(paths.pid_file)
    if stale:
        return CheckResult(
            "pid file",
            Status.WARN,
            f"names pid {stale} but no gateway holds it (left by a crash)",
            "harmless: the next start replaces it",
        )
    return CheckResult("pid file", Status.OK, "gateway not running")


def check_port(paths: Paths, config: ClawgateConfig | None, probes: DoctorProbes) -> CheckResult:
    """The gateway port is free, or held by our own running gateway."""
    port = (config or ClawgateConfig()).gateway.port
    holder = probes.port_holder(port)
    ours = running_pid(paths.pid_file)
    if holder is None:
        return CheckResult("port", Status.OK, f"{port} is free")
    if ours and holder.startswith(f"pid {ours} "):
        return CheckResult("port", Status.OK, f"{port} is held by this gateway (pid {ours})")
    return CheckResult(
        "port",
        Status.FAIL,
        f"{port} is held by {holder}",
        "stop that process or set another port: clawgate config set gateway.port N",
    )


def check_ipc_socket(paths: Paths) -> CheckResult:
    """The plugin socket, if present, is a socket only this user can open."""
    sock = paths.home / "gateway.sock"
    if not sock.exists():
        return CheckResult("ipc socket", Status.SKIP, "no plugin socket (none is served yet)")
    info = sock.stat()
    if not stat.S_ISSOCK(info.st_mode):
        return CheckResult(
            "ipc socket", Status.FAIL, f"{sock} is not a socket", f"move {sock} away"
        )
    if stat.S_IMODE(info.st_mode) & 0o077 or info.st_uid != os.geteuid():
        return CheckResult(
            "ipc socket",
            Status.FAIL,
            f"{sock} is {oct(stat.S_IMODE(info.st_mode))}",
            "restart the gateway; it recreates the socket with mode 0600",
        )
    return CheckResult("ipc socket", Status.OK, f"{sock} is 0600")


def check_state_db(paths: Paths) -> CheckResult:
    """The state database is intact and at a schema this version knows."""
    health = inspect_store(paths.state_db)
    if not health.exists:
        return CheckResult("state.db", Status.OK, health.message)
    if health.ok:
        version = f"schema {health.schema_version} of {health.known_version}"
        return CheckResult("state.db", Status.OK, f"intact, {version}")
    return CheckResult(
        "state.db",
        Status.FAIL,
        health.message,
        "stop the gateway and start it again: it moves a corrupt file aside and starts fresh",
    )


def check_disk(paths: Paths, probes: DoctorProbes) -> CheckResult:
    """There is room for logs and the database."""
    where = paths.home if paths.home.exists() else paths.home.parent
    free = probes.free_bytes(where)
    text = f"{free / 1_073_741_824:.1f} GiB free"
    if free < DISK_FAIL_BYTES:
        return CheckResult("disk", Status.FAIL, text, "free disk space next to the home")
    if free < DISK_WARN_BYTES:
        return CheckResult("disk", Status.WARN, text, "free disk space next to the home")
    return CheckResult("disk", Status.OK, text)


def systemd_unit_type(content: str) -> str:
    """Return a unit file's `Type=` (systemd's default, `simple`, when it names none)."""
    found = "simple"
    for line in content.splitlines():
        name, _, value = line.strip().partition("=")
        if name.strip() == "Type":
            found = value.strip()
    return found


def check_service(probes: DoctorProbes) -> CheckResult:
    """The boot unit, if installed, runs this install."""
    unit = probes.installed_unit()
    if unit is None:
        return CheckResult(
            "service", Status.SKIP, "no boot unit installed", "clawgate gateway install"
        )
    expected = probes.expected_service()
    wanted = expected.unit_type if expected is not None else "notify"
    found = systemd_unit_type(unit.content) if unit.manager is ServiceManager.SYSTEMD else wanted
    if found != wanted:
        return CheckResult(
            "service",
            Status.WARN,
            f"{unit.path} is an old Type={found} unit; the gateway now reports readiness and "
            f"watchdog pings to systemd (Type={wanted})",
            "run clawgate gateway install again",
        )
    if expected is not None and not unit.matches(expected):
        return CheckResult(
            "service",
            Status.WARN,
            f"{unit.path} runs a different install or home",
            "clawgate gateway install (rewrites it for this install)",
        )
    return CheckResult("service", Status.OK, f"{unit.path} matches this install")


def check_gateway(paths: Paths, config: ClawgateConfig | None, probes: DoctorProbes) -> CheckResult:
    """A running gateway answers `health` (over TLS, pinned, when it is configured)."""
    config = config or ClawgateConfig()
    port = config.gateway.port
    try:
        tls = resolve_tls(config, paths, generate=False)
    except ConfigError as exc:
        return CheckResult("gateway", Status.FAIL, str(exc), "fix [gateway.tls]")
    secure = "s" if tls else ""
    context = pinned_client_context(tls) if tls else None
    if not probes.http_ok(f"http{secure}://127.0.0.1:{port}/readyz", context):
        return CheckResult("gateway", Status.SKIP, "not running", "clawgate gateway start (or run)")
    pin = tls.fingerprint if tls else None
    problem = probes.gateway_health(f"ws{secure}://127.0.0.1:{port}/", config, pin)
    if problem is None:
        return CheckResult("gateway", Status.OK, "answers health")
    return CheckResult("gateway", Status.FAIL, problem, "see `clawgate gateway logs`")


def check_cloud(paths: Paths, config: ClawgateConfig | None, probes: DoctorProbes) -> CheckResult:
    """The running gateway's link is up, or at least the hub is reachable."""
    config = config or ClawgateConfig()
    url = config.cloud.url
    if not url:
        return CheckResult("cloud link", Status.SKIP, "not configured")
    if not config.auth.api_key:
        fix = "clawgate config set auth.api_key KEY (or CLAWGATE_API_KEY)"
        return CheckResult("cloud link", Status.FAIL, "[cloud] url is set but no api key", fix)
    link = _running_link(paths, config, probes)
    if link is not None:
        return _link_result(link)
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None:
        return CheckResult("cloud link", Status.FAIL, f"{url} has no host", "fix [cloud] url")
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    if probes.tcp_reachable(parts.hostname, port):
        return CheckResult("cloud link", Status.OK, f"{parts.hostname}:{port} reachable")
    return CheckResult(
        "cloud link",
        Status.FAIL,
        f"cannot reach {parts.hostname}:{port}",
        "check the network and [cloud] url",
    )


def _running_link(
    paths: Paths, config: ClawgateConfig, probes: DoctorProbes
) -> dict[str, Any] | None:
    try:
        tls = resolve_tls(config, paths, generate=False)
    except ConfigError:
        return None
    secure = "s" if tls else ""
    return probes.link_status(
        f"ws{secure}://127.0.0.1:{config.gateway.port}/", config, tls.fingerprint if tls else None
    )


def _link_result(link: dict[str, Any]) -> CheckResult:
    state = str(link.get("state"))
    error = str(link.get("lastError") or "")
    if state == "connected":
        return CheckResult("cloud link", Status.OK, f"connected since {link.get('since')}")
    if state == "login_required":
        return CheckResult(
            "cloud link",
            Status.FAIL,
            "login required: the hub refused the api key",
            "set a valid [auth] api_key, then clawgate gateway restart",
        )
    if state == "upgrade_required":
        return CheckResult(
            "cloud link", Status.FAIL, error or "the hub needs a newer clawgate", "upgrade clawgate"
        )
    finding = f"{state.replace('_', ' ')}" + (f": {error}" if error else "")
    return CheckResult(
        "cloud link", Status.WARN, finding, "check the hub and `clawgate gateway logs`"
    )


def check_channels(
    paths: Paths, config: ClawgateConfig | None, probes: DoctorProbes
) -> list[CheckResult]:
    """Each channel account: its extra installed, a credential, the platform answering."""
    if config is None or not config.channels.configured():
        return [CheckResult("channels", Status.SKIP, "no channel configured")]
    from ..channels.registry import spec_for
    from ..channels.settings import resolve_accounts

    results = []
    for account in resolve_accounts(config.channels, paths.home).accounts:
        name = f"channel {account.key}"
        spec = spec_for(account.channel, account.options.get("mode"))
        if not account.enabled:
            results.append(CheckResult(name, Status.SKIP, "disabled"))
        elif spec is not None and not probes.module_available(spec.sdk):
            fix = f"pip install 'clawgate[{spec.extra}]'"
            results.append(CheckResult(name, Status.FAIL, f"{spec.sdk} is not installed", fix))
        elif not account.secret and (spec is None or spec.credential_required):
            key = {
                "matrix": "access_token_file",
                "slack": "bot_token_file",
                "whatsapp": "access_token_file",
                "imessage": "password_file",
            }.get(account.channel, "token_file")
            fix = f"set {key} in [channels.{account.channel}] or {account.secret_source}"
            results.append(CheckResult(name, Status.FAIL, "no credential", fix))
        else:
            problem = probes.channel_problem(account.channel, account.options, account.secret or "")
            if problem is None:
                # IRC is only probed for reachability: registering would show the bot online.
                ok = "server reachable" if account.channel == "irc" else "credential accepted"
                results.append(CheckResult(name, Status.OK, ok))
            else:
                fix = f"check the credential and [channels.{account.channel}]"
                results.append(CheckResult(name, Status.FAIL, problem, fix))
    return results


def run_checks(paths: Paths, probes: DoctorProbes) -> list[CheckResult]:
    """Run every check in a fixed order."""
    config_result, config = check_config(paths)
    return [
        check_python(probes),
        config_result,
        check_permissions(paths),
        check_pid_file(paths),
        check_port(paths, config, probes),
        check_ipc_socket(paths),
        check_state_db(paths),
        check_disk(paths, probes),
        check_service(probes),
        check_gateway(paths, config, probes),
        check_cloud(paths, config, probes),
        *check_channels(paths, config, probes),
    ]
