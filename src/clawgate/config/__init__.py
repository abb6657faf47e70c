"""The config file `config.toml`: one pydantic model, read with tomllib, written with tomlkit.

`ClawgateConfig` puts together the tables of each area, which live beside it:
`gateway.py` (`[gateway]` with its auth and TLS, `[pairing]`, `[nodes]`, `[log]`),
`control.py` (`[auth]`, `[cloud]`, `[ipc]`, `[queue]`, `[reconcile]`), `agent.py`
(`[agent]`, `[agent.openai]`), `automation.py` (`[heartbeat]`, `[cron]`), `http.py`
(`[http]`, `[hooks]`, `[canvas]`) and `channels.py` (`[channels]`), all on `section.py`'s base.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pydantic import Field, ValidationError

from ..automation.durations import format_duration, parse_duration
from ..files import write_atomic
from ..protocol.limits import MAX_NESTING_DEPTH, Limits
from ..protocol.nesting import text_nesting_exceeds
from .agent import AgentBackendKind, AgentSection, OpenAISection
from .automation import CronSection, HeartbeatSection
from .channels import (
    ChannelCommon,
    ChannelsSection,
    DiscordAccountSection,
    DiscordSection,
    IMessageAccountSection,
    IMessageSection,
    IrcAccountSection,
    IrcSection,
    MatrixAccountSection,
    MatrixSection,
    SignalAccountSection,
    SignalSection,
    SlackAccountSection,
    SlackSection,
    TelegramAccountSection,
    TelegramSection,
    WhatsAppAccountSection,
    WhatsAppSection,
)
from .control import ApiAuthSection, CloudSection, IpcSection, QueueSection, ReconcileSection
from .gateway import AuthSettings, GatewaySection, LogSection, NodesSection, PairingSection
from .http import CanvasSection, HookMappingSection, HooksSection, HttpSection, OpenAIHttpSection
from .section import Section

__all__ = [
    "SECRET_KEYS",
    "TOKEN_ENV",
    "AgentBackendKind",
    "AgentSection",
    "AuthSettings",
    "CanvasSection",
    "ChannelCommon",
    "ChannelsSection",
    "ClawgateConfig",
    "ConfigError",
    "CronSection",
    "DiscordAccountSection",
    "DiscordSection",
    "GatewaySection",
    "HeartbeatSection",
    "HookMappingSection",
    "HooksSection",
    "HttpSection",
    "IMessageAccountSection",
    "IMessageSection",
    "IrcAccountSection",
    "IrcSection",
    "LogSection",
    "MatrixAccountSection",
    "MatrixSection",
    "NodesSection",
    "OpenAIHttpSection",
    "OpenAISection",
    "SignalAccountSection",
    "SignalSection",
    "SlackAccountSection",
    "SlackSection",
    "TelegramAccountSection",
    "TelegramSection",
    "WhatsAppAccountSection",
    "WhatsAppSection",
    "bind_host",
    "check_config_permissions",
    "ensure_gateway_token",
    "load_config",
    "with_env_overrides",
]

TOKEN_ENV = "CLAWGATE_GATEWAY_TOKEN"
PASSWORD_ENV = "CLAWGATE_GATEWAY_PASSWORD"
API_KEY_ENV = "CLAWGATE_API_KEY"
#: Heartbeats every 30 minutes unless configured (OpenClaw reports heartbeatSeconds 1800).
DEFAULT_HEARTBEAT_EVERY_S: Final = 1800

# Every key that holds a secret: redacted wherever config is shown, never logged.
# A `*` matches any key at that level (named channel accounts).
SECRET_KEYS: Final = (
    ("gateway", "auth", "token"),
    ("gateway", "auth", "password"),
    ("auth", "api_key"),
    ("hooks", "token"),
    ("channels", "telegram", "token"),
    ("channels", "telegram", "accounts", "*", "token"),
    ("channels", "irc", "password"),
    ("channels", "irc", "accounts", "*", "password"),
    ("channels", "matrix", "access_token"),
    ("channels", "matrix", "password"),
    ("channels", "matrix", "accounts", "*", "access_token"),
    ("channels", "matrix", "accounts", "*", "password"),
    ("channels", "slack", "bot_token"),
    ("channels", "slack", "app_token"),
    ("channels", "slack", "accounts", "*", "bot_token"),
    ("channels", "slack", "accounts", "*", "app_token"),
    ("channels", "slack", "signing_secret"),
    ("channels", "slack", "accounts", "*", "signing_secret"),
    ("channels", "discord", "token"),
    ("channels", "discord", "accounts", "*", "token"),
    ("channels", "whatsapp", "access_token"),
    ("channels", "whatsapp", "app_secret"),
    ("channels", "whatsapp", "verify_token"),
    ("channels", "whatsapp", "accounts", "*", "access_token"),
    ("channels", "whatsapp", "accounts", "*", "app_secret"),
    ("channels", "whatsapp", "accounts", "*", "verify_token"),
    ("channels", "imessage", "password"),
    ("channels", "imessage", "accounts", "*", "password"),
)


class ConfigError(Exception):
    """The config file cannot be read or is invalid; the message says where."""


class ClawgateConfig(Section):
    """The whole config file."""

    gateway: GatewaySection = Field(default_factory=GatewaySection)
    auth: ApiAuthSection = Field(default_factory=ApiAuthSection)
    cloud: CloudSection = Field(default_factory=CloudSection)
    pairing: PairingSection = Field(default_factory=PairingSection)
    nodes: NodesSection = Field(default_factory=NodesSection)
    agent: AgentSection = Field(default_factory=AgentSection)
    heartbeat: HeartbeatSection = Field(default_factory=HeartbeatSection)
    cron: CronSection = Field(default_factory=CronSection)
    log: LogSection = Field(default_factory=LogSection)
    ipc: IpcSection = Field(default_factory=IpcSection)
    queue: QueueSection = Field(default_factory=QueueSection)
    reconcile: ReconcileSection = Field(default_factory=ReconcileSection)
    http: HttpSection = Field(default_factory=HttpSection)
    hooks: HooksSection = Field(default_factory=HooksSection)
    canvas: CanvasSection = Field(default_factory=CanvasSection)
    channels: ChannelsSection = Field(default_factory=ChannelsSection)

    def heartbeat_every_s(self) -> int:
        """Return the heartbeat cadence: `[heartbeat] every`, else the deprecated alias."""
        if self.heartbeat.every is not None:
            return parse_duration(self.heartbeat.every)
        if self.gateway.heartbeat_every_s is not None:
            return self.gateway.heartbeat_every_s
        return DEFAULT_HEARTBEAT_EVERY_S

    def deprecations(self) -> list[str]:
        """Return one line per deprecated key in use, saying what to write instead."""
        if self.gateway.heartbeat_every_s is None:
            return []
        every = format_duration(self.gateway.heartbeat_every_s)
        if self.heartbeat.every is not None:
            return [
                "[gateway] heartbeat_every_s is deprecated and ignored: [heartbeat] every is set"
            ]
        return [f'[gateway] heartbeat_every_s is deprecated; write [heartbeat] every = "{every}"']

    def limits(self) -> Limits:
        """Return the protocol limits this config sets."""
        gateway = self.gateway
        return Limits(
            max_payload=gateway.max_payload,
            max_buffered_bytes=gateway.max_buffered_bytes,
            tick_interval_ms=gateway.tick_interval_ms,
            handshake_timeout_ms=gateway.handshake_timeout_ms,
            http_read_timeout_ms=gateway.http_read_timeout_ms,
            http_max_connections_per_ip=gateway.http_max_connections_per_ip,
        )


def _line_of(text: str, key: str) -> int | None:
    """Return the first line number where `key` is assigned, if it can be found."""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().split("=")[0].strip() == key:
            return number
    return None


def load_config(path: Path) -> ClawgateConfig:
    """Read and validate `path`; a missing file gives the defaults.

    Raises:
        ConfigError: the file is not TOML or names an unknown or invalid key.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ClawgateConfig()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start}); save it as UTF-8 text") from None
    if text_nesting_exceeds(text):
        raise ConfigError(f"{path}: arrays or tables nested deeper than {MAX_NESTING_DEPTH}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return ClawgateConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        key = ".".join(str(part) for part in error["loc"])
        line = _line_of(text, str(error["loc"][-1]))
        where = f"{path}:{line}" if line else str(path)
        if error["type"] == "extra_forbidden":
            raise ConfigError(f"{where}: unknown key '{key}'; remove it or fix its name") from None
        raise ConfigError(f"{where}: invalid value for '{key}': {error['msg']}") from None


def ensure_gateway_token(path: Path) -> str:
    """Generate a gateway token, store it in `[gateway.auth] token`, and return it."""
    import tomlkit  # editing config is rare; the running gateway need not load tomlkit

    try:
        document = tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        document = tomlkit.document()
        document.add(tomlkit.comment("clawgate configuration; see README for every key"))
    token = secrets.token_urlsafe(32)
    gateway = document.setdefault("gateway", tomlkit.table())
    auth = gateway.setdefault("auth", tomlkit.table())
    auth["token"] = token
    write_atomic(path, tomlkit.dumps(document))
    return token


def bind_host(bind: str) -> str:
    """Map `loopback`, `lan` or an IP literal to the address to listen on.

    Raises:
        ConfigError: `bind` is none of those.
    """
    if bind == "loopback":
        return "127.0.0.1"
    if bind == "lan":
        return "0.0.0.0"
    try:
        return str(ipaddress.ip_address(bind))
    except ValueError:
        raise ConfigError(f"bind must be loopback, lan or an IP address (got {bind!r})") from None


def is_loopback_host(host: str) -> bool:
    """Return whether a listen address only accepts local connections."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def with_env_overrides(
    config: ClawgateConfig, environ: Mapping[str, str] | None = None
) -> ClawgateConfig:
    """Return `config` with the environment's overrides applied (control-plane spec §1.2).

    `CLAWGATE_GATEWAY_TOKEN`, `CLAWGATE_GATEWAY_PASSWORD`, `CLAWGATE_API_KEY`,
    `CLAWGATE_CLOUD_URL` and `CLAWGATE_LOG_LEVEL` win over the file.
    """
    env = os.environ if environ is None else environ
    data = config.model_dump()
    overrides = (
        (TOKEN_ENV, ("gateway", "auth", "token")),
        (PASSWORD_ENV, ("gateway", "auth", "password")),
        (API_KEY_ENV, ("auth", "api_key")),
        ("CLAWGATE_CLOUD_URL", ("cloud", "url")),
        ("CLAWGATE_LOG_LEVEL", ("log", "level")),
    )
    for name, path in overrides:
        value = env.get(name)
        if value:
            section = data
            for part in path[:-1]:
                section = section[part]
            section[path[-1]] = value
    try:
        return ClawgateConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        key = ".".join(str(part) for part in error["loc"])
        raise ConfigError(f"environment override for '{key}' is invalid: {error['msg']}") from None


def check_config_permissions(path: Path) -> None:
    """Refuse a config file another user owns or others may read (spec §1.2).

    Raises:
        ConfigError: the owner or mode is wrong; the message says how to fix it.
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_uid != os.geteuid():
        raise ConfigError(f"{path} is owned by another user; it must be yours with mode 0600")
    if info.st_mode & 0o077:
        raise ConfigError(f"{path} is readable by others; fix it with: chmod 600 {path}")


def token_from_env() -> str | None:
    """Return the gateway token from the environment, if set."""
    return os.environ.get(TOKEN_ENV) or None


def password_from_env() -> str | None:
    """Return the gateway password from the environment, if set."""
    return os.environ.get(PASSWORD_ENV) or None
