"""Turn config, flags and environment into a running gateway, and stop it on a signal."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import secrets
import signal
from asyncio import FIRST_COMPLETED
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..automation.zones import system_zone_name
from ..canvas.settings import CanvasSettings
from ..cloud.settings import LinkSettings
from ..config import (
    PASSWORD_ENV,
    TOKEN_ENV,
    ClawgateConfig,
    ConfigError,
    bind_host,
    check_config_permissions,
    ensure_gateway_token,
    is_loopback_host,
    password_from_env,
    token_from_env,
)
from ..gateway.heartbeat import heartbeat_settings
from ..gateway.server import BackgroundFailure, GatewayServer
from ..gateway.settings import GatewaySettings, NodeSettings, PluginSettings
from ..protocol.auth import AuthMode, SharedSecretAuth, secrets_equal
from ..tls import CERT_FILE, KEY_FILE, TlsError, TlsMaterial, ensure_self_signed, load_material
from .heap import release_free_heap
from .paths import Paths
from .runstate import RunState, clear_run_state, write_run_state
from .sd_notify import READY, STOPPING, WATCHDOG, SdNotifier

__all__ = [
    "AuthSource",
    "GatewayOverrides",
    "check_startup",
    "resolve_settings",
    "resolve_tls",
    "run_gateway",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GatewayOverrides:
    """Command-line flags that override the config file."""

    port: int | None = None
    bind: str | None = None
    auth: AuthMode | None = None
    token: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class AuthSource:
    """Where the shared secret came from, for the start-up message (never the secret)."""

    description: str
    generated: bool = False


def _resolve_auth(
    config: ClawgateConfig, paths: Paths, overrides: GatewayOverrides, *, generate: bool = True
) -> tuple[SharedSecretAuth, AuthSource]:
    mode = overrides.auth or config.gateway.auth.mode
    if mode is AuthMode.NONE:
        return SharedSecretAuth(AuthMode.NONE), AuthSource("no authentication")
    if mode is AuthMode.PASSWORD:
        for password, source in (
            (overrides.password, "--password"),
            (password_from_env(), "CLAWGATE_GATEWAY_PASSWORD"),
            (config.gateway.auth.password, f"{paths.config} [gateway.auth] password"),
        ):
            if password:
                return SharedSecretAuth(AuthMode.PASSWORD, password), AuthSource(source)
        raise ConfigError(
            "password auth needs a password: pass --password, set CLAWGATE_GATEWAY_PASSWORD, "
            "or set [gateway.auth] password in config.toml"
        )
    for token, source in (
        (overrides.token, "--token"),
        (token_from_env(), "CLAWGATE_GATEWAY_TOKEN"),
        (config.gateway.auth.token, f"{paths.config} [gateway.auth] token"),
    ):
        if token:
            return SharedSecretAuth(AuthMode.TOKEN, token), AuthSource(source)
    # Without `generate` (a dry run) the token the first start would store stays in memory.
    generated = ensure_gateway_token(paths.config) if generate else secrets.token_urlsafe(32)
    origin = AuthSource(f"{paths.config} [gateway.auth] token", generated=True)
    return SharedSecretAuth(AuthMode.TOKEN, generated), origin


def resolve_tls(
    config: ClawgateConfig, paths: Paths, *, generate: bool = True
) -> TlsMaterial | None:
    """Return the gateway's TLS material; None when TLS is off (or, without `generate`, not made).

    Raises:
        ConfigError: the configured or stored pair cannot be used.
    """
    section = config.gateway.tls
    if not section.enabled:
        return None
    try:
        if section.cert is not None and section.key is not None:
            return load_material(_in_home(paths, section.cert), _in_home(paths, section.key))
        cert, key = paths.tls_dir / CERT_FILE, paths.tls_dir / KEY_FILE
        if not generate and not (cert.exists() and key.exists()):
            return None
        return ensure_self_signed(paths.tls_dir)
    except TlsError as exc:
        raise ConfigError(f"[gateway.tls] {exc}") from None


def _in_home(paths: Paths, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else paths.home / path


def check_startup(
    config: ClawgateConfig, paths: Paths, overrides: GatewayOverrides, *, generate: bool = True
) -> tuple[GatewaySettings, AuthSource]:
    """Make every check `gateway run` makes of its config before it listens; return the settings.

    `gateway run` and `config validate` both call this, so a config one refuses the other
    refuses with the same message. With `generate=False` nothing is written: the token and
    the self-signed TLS pair a first start would make are not made (and not missing).

    Raises:
        ConfigError: the file's owner or mode is wrong, or the settings are unsafe/incomplete.
    """
    check_config_permissions(paths.config)
    return resolve_settings(config, paths, overrides, generate=generate)


def resolve_settings(
    config: ClawgateConfig, paths: Paths, overrides: GatewayOverrides, *, generate: bool = True
) -> tuple[GatewaySettings, AuthSource]:
    """Combine config and flags into server settings (`generate=False`: write nothing).

    Raises:
        ConfigError: the combination is unsafe or incomplete, e.g. `lan` without auth.
    """
    host = bind_host(overrides.bind or config.gateway.bind)
    auth, source = _resolve_auth(config, paths, overrides, generate=generate)
    if auth.mode is AuthMode.NONE and not is_loopback_host(host):
        raise ConfigError(
            f"refusing to listen on {host} without authentication: "
            "use --auth token (the default) or bind to loopback"
        )
    port = config.gateway.port if overrides.port is None else overrides.port
    for warning in config.deprecations():
        logger.warning("%s", warning)
    pinned = source.description in ("--token", "--password", TOKEN_ENV, PASSWORD_ENV)
    settings = GatewaySettings(
        home=paths.home,
        auth=auth,
        host=host,
        port=port,
        limits=config.limits(),
        allowed_origins=frozenset(config.gateway.allowed_origins),
        heartbeat=heartbeat_settings(config),
        timezone=config.gateway.timezone or system_zone_name(),
        cron_enabled=config.cron.enabled,
        workspace=_in_home(paths, config.agent.workspace),
        config_path=paths.config,
        log_file=paths.log_file,
        auth_pinned=pinned,
        state_db=paths.state_db,
        tls=resolve_tls(config, paths, generate=generate),
        ipc_socket=paths.ipc_socket,
        auto_approve_loopback=config.pairing.auto_approve_loopback,
        plugins=PluginSettings(
            request_timeout_s=config.ipc.request_timeout_s,
            method_timeouts_s=dict(config.ipc.method_timeouts_s),
            queue_ttl_s=config.queue.ttl_s,
            queue_max_total=config.queue.max_total,
            queue_max_per_target=config.queue.max_per_target,
            drift_interval_s=config.reconcile.drift_interval_s,
        ),
        agent=config.agent,
        cloud=_link_settings(config),
        openai_http=config.http.openai,
        hooks=config.hooks,
        hook_secrets=_hook_secrets(config, auth),
        canvas=_canvas_settings(config, paths, auth),
        control_ui_root=_control_ui_root(config, paths),
        nodes=NodeSettings(
            allow_commands=tuple(config.nodes.allow_commands),
            deny_commands=tuple(config.nodes.deny_commands),
            approval_timeout_ms=config.nodes.approval_timeout_s * 1000,
        ),
        channels=_channel_settings(config, paths),
    )
    return settings, source


def _hook_secrets(config: ClawgateConfig, auth: SharedSecretAuth) -> dict[str, str]:
    """Return each mapped hook's HMAC secret from its environment variable.

    Raises:
        ConfigError: hooks reuse the gateway's secret, or a named variable is not set.
    """
    hooks = config.hooks
    if not hooks.enabled:
        return {}
    if hooks.token and auth.secret and secrets_equal(hooks.token, auth.secret):
        raise ConfigError(
            "[hooks] token must differ from the gateway's token or password: "
            "a hook caller must not get operator access"
        )
    secrets: dict[str, str] = {}
    for name, mapping in hooks.mappings.items():
        if mapping.secret_env is None:
            continue
        value = os.environ.get(mapping.secret_env)
        if not value:
            raise ConfigError(
                f"[hooks.mappings.{name}] secret_env names {mapping.secret_env}, which is not set"
            )
        secrets[name] = value
    return secrets


def _canvas_settings(
    config: ClawgateConfig, paths: Paths, auth: SharedSecretAuth
) -> CanvasSettings | None:
    """Return the canvas host's settings, or None when `[canvas] enabled` is false.

    Raises:
        ConfigError: the canvas would listen beyond loopback without authentication.
    """
    section = config.canvas
    if not section.enabled:
        return None
    try:
        host = bind_host(section.bind)
    except ConfigError as exc:
        raise ConfigError(f"[canvas] {exc}") from None
    if auth.mode is AuthMode.NONE and not is_loopback_host(host):
        raise ConfigError(
            f"refusing to serve the canvas on {host} without authentication: "
            'use --auth token (the default) or [canvas] bind = "loopback"'
        )
    root = _in_home(paths, section.root) if section.root else paths.canvas_root
    return CanvasSettings(root=root, host=host, port=section.port, live_reload=section.live_reload)


def _control_ui_root(config: ClawgateConfig, paths: Paths) -> Path | None:
    """Return the Control UI bundle's folder, or None when `[gateway] control_ui_root` is unset.

    Raises:
        ConfigError: the folder holds no `index.html`.
    """
    raw = config.gateway.control_ui_root
    if not raw:
        return None
    root = _in_home(paths, raw)
    if not (root / "index.html").is_file():
        raise ConfigError(
            f"[gateway] control_ui_root: no index.html in {root}; "
            "run `clawgate ui fetch-openclaw` or point it at an unpacked dist/control-ui"
        )
    return root


def _channel_settings(config: ClawgateConfig, paths: Paths) -> Any:
    """Return the channel accounts, or None when `[channels]` configures none."""
    if not config.channels.configured():
        return None
    # Imported only here: a gateway without channels loads no channel code.
    from ..channels.settings import resolve_accounts

    return resolve_accounts(config.channels, paths.home)


def _link_settings(config: ClawgateConfig) -> LinkSettings | None:
    """Return the control link's settings, or None when it is off (§3.1: URL and key)."""
    url, key = config.cloud.url, config.auth.api_key
    if not url or not key:
        return None
    return LinkSettings(url=url, api_key=key, allow_insecure=config.cloud.allow_insecure)


async def run_gateway(
    settings: GatewaySettings,
    on_ready: Callable[[GatewayServer], None] | None = None,
    *,
    detached: bool = False,
    notifier: SdNotifier | None = None,
) -> None:
    """Run a gateway until SIGTERM or SIGINT, then shut it down in order; SIGHUP reloads config.

    `detached` is recorded in the run state: True when `gateway start` spawned this process.
    Under systemd (`Type=notify`) `notifier` reports READY=1 once serving, WATCHDOG=1 pings
    and STOPPING=1 at shutdown; by default it reads `NOTIFY_SOCKET` from the environment.
    """
    server = GatewayServer(settings)
    notifier = notifier or SdNotifier()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, _reload, server)
    state_path = Paths(settings.home).run_state
    try:
        await server.start()
        # What start-up loaded (modules, config, thousands of cron jobs) lives as long as the
        # process: keep it out of the cyclic GC's full passes, which otherwise scan all of
        # it and stall the loop (~0.1-0.3 s with 10,000 jobs) at moments like a due pass.
        gc.collect()
        gc.freeze()
        release_free_heap()  # what start-up freed goes back to the OS, not kept resident
        tls = settings.tls
        write_run_state(
            state_path,
            RunState.new(
                "gateway",
                url=server.url,
                port=server.port,
                boot_id=server.info.boot_id,
                started_ms=server.info.started_ms,
                identity_key=server.info.identity_key,
                tls_fingerprint=tls.fingerprint if tls is not None else None,
                detached=detached,
            ),
        )
        if on_ready is not None:
            on_ready(server)
        notifier.send(READY, status=f"serving on {server.url}")  # /readyz answers 200 now
        if notifier.watchdog_s is not None:
            server.spawn(_watchdog(notifier, notifier.watchdog_s), name="sd-watchdog")
        signalled = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(server.wait_failed())
        done, pending = await asyncio.wait({signalled, failed}, return_when=FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if failed in done:
            raise BackgroundFailure("a background loop of the gateway failed; see its log")
        logger.info("signal received; stopping")
    finally:
        notifier.send(STOPPING)
        clear_run_state(state_path, server.info.boot_id)
        await server.stop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)


def _reload(server: GatewayServer) -> None:
    """SIGHUP: re-read config.toml once the gateway serves (before, the file just loaded holds)."""
    if not server.ready:
        logger.warning("config reload ignored: the gateway is starting or stopping")
        return
    logger.info("SIGHUP received; reloading config")
    server.spawn(_reload_config(server), name="config-reload")


async def _watchdog(notifier: SdNotifier, interval_s: float) -> None:
    """Ping systemd's watchdog while the event loop runs; a stalled loop stops the pings."""
    while True:
        notifier.send(WATCHDOG)
        await asyncio.sleep(interval_s)


async def _reload_config(server: GatewayServer) -> None:
    await server.config.reload()
