"""The config file `config.toml`: one pydantic model, read with tomllib, written with tomlkit."""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..automation.durations import format_duration, parse_duration
from ..automation.heartbeat_rules import DEFAULT_ACK_TOKEN, ActiveHours
from ..automation.zones import get_zone
from ..files import write_atomic
from ..protocol.auth import AuthMode
from ..protocol.ipc.timeouts import DEFAULT_TIMEOUTS_S
from ..protocol.limits import (
    AGENT_MAX_INPUT_CHARS,
    HOOKS_MAX_BODY_BYTES,
    HOOKS_RATE_PER_MINUTE,
    HTTP_CONNECTIONS_PER_IP_MAX,
    HTTP_CONNECTIONS_PER_IP_MIN,
    HTTP_READ_TIMEOUT_MAX_MS,
    HTTP_READ_TIMEOUT_MIN_MS,
    MAX_NESTING_DEPTH,
    MIB,
    OPENAI_MAX_BODY_BYTES,
    Limits,
)
from ..protocol.nesting import text_nesting_exceeds
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
from .section import ENV_NAME, Section

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


class AuthSettings(Section):
    """`[gateway.auth]`: how clients authenticate."""

    mode: AuthMode = Field(
        default=AuthMode.TOKEN, description="none | token | password; `none` only on loopback"
    )
    token: str | None = Field(
        default=None,
        repr=False,
        description=(
            "the shared token clients send; generated on first start when "
            "absent (env CLAWGATE_GATEWAY_TOKEN)"
        ),
    )
    password: str | None = Field(
        default=None,
        repr=False,
        description=('the shared password with mode = "password" (env CLAWGATE_GATEWAY_PASSWORD)'),
    )


class TlsSection(Section):
    """`[gateway.tls]`: TLS on the gateway port (self-signed in `<home>/tls/` without paths)."""

    enabled: bool = Field(
        default=False, description="serve wss:// and https:// on the gateway port"
    )
    cert: str | None = Field(
        default=None, description="PEM certificate; with key, instead of the self-signed pair"
    )
    key: str | None = Field(default=None, description="PEM private key of cert")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsSection:
        if (self.cert is None) != (self.key is None):
            raise ValueError("set both cert and key, or neither for a self-signed pair")
        return self


class GatewaySection(Section):
    """`[gateway]`: the WebSocket/HTTP server."""

    port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=18789, description="WebSocket + HTTP port"
    )
    bind: str = Field(default="loopback", description="loopback | lan | an IP address")
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tls: TlsSection = Field(default_factory=TlsSection)
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="browser origins allowed besides localhost/127.0.0.1/[::1]",
    )
    handshake_timeout_ms: Annotated[int, Field(ge=1_000, le=120_000)] = Field(
        default=10_000, description="time a client has to send `connect` (1000..120000)"
    )
    tick_interval_ms: Annotated[int, Field(ge=100)] = Field(
        default=30_000, description="`tick` event cadence"
    )
    max_payload: Annotated[int, Field(ge=65_536)] = Field(
        default=Limits().max_payload, description="largest inbound frame after hello-ok (bytes)"
    )
    max_buffered_bytes: Annotated[int, Field(ge=65_536)] = Field(
        default=Limits().max_buffered_bytes,
        description="unwritten bytes per socket before it is closed as a slow consumer",
    )
    http_read_timeout_ms: Annotated[
        int, Field(ge=HTTP_READ_TIMEOUT_MIN_MS, le=HTTP_READ_TIMEOUT_MAX_MS)
    ] = Field(
        default=Limits().http_read_timeout_ms,
        description=(
            "an HTTP request, headers and body, must arrive within this or its connection is closed"
        ),
    )
    http_max_connections_per_ip: Annotated[
        int, Field(ge=HTTP_CONNECTIONS_PER_IP_MIN, le=HTTP_CONNECTIONS_PER_IP_MAX)
    ] = Field(
        default=Limits().http_max_connections_per_ip,
        description=(
            "open HTTP connections one address may hold (a WebSocket counts only until its upgrade)"
        ),
    )
    heartbeat_every_s: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description=(
            "deprecated alias of `[heartbeat] every` (seconds); `[heartbeat] "
            "every` wins when both are set"
        ),
    )
    timezone: str | None = Field(
        default=None,
        description=(
            "the IANA zone of cron jobs without `tz` and of heartbeat active "
            "hours; unset: the system's"
        ),
    )
    control_ui_root: str | None = Field(
        default=None,
        description=(
            "an unpacked OpenClaw Control UI bundle (`dist/control-ui`) to serve at /control/"
        ),
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None:
            get_zone(value)  # a ZoneError is a ValueError: pydantic reports it
        return value


class HeartbeatSection(Section):
    """`[heartbeat]`: the agent's periodic turn (gateway spec §10.1)."""

    every: str | None = Field(
        default=None,
        description=(
            'how often, e.g. "30m" or "1h"; "0m" runs no scheduled beats (`wake` still beats)'
        ),
    )
    active_hours: str | None = Field(
        default=None,
        description=(
            'a daily window in [gateway] timezone, e.g. "08:00-22:00"; unset beats around the clock'
        ),
    )
    prompt: str | None = Field(
        default=None,
        description=(
            "the heartbeat prompt; unset: HEARTBEAT.md in the agent's "
            "workspace, else a built-in one"
        ),
    )
    target: str = Field(
        default="main",
        description="the WebChat session that replies (other than the ack token) go to",
    )
    channel: str | None = Field(
        default=None,
        description="or a channel (with `to`) that replies go to instead",
    )
    to: str | None = Field(default=None, description="the peer (chat id) on that channel")
    ack_token: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        default=DEFAULT_ACK_TOKEN, description="a reply that is only this token is not delivered"
    )

    @model_validator(mode="after")
    def _valid(self) -> HeartbeatSection:
        if self.every is not None:
            parse_duration(self.every)
        if self.active_hours is not None:
            ActiveHours.parse(self.active_hours)
        if (self.channel is None) != (self.to is None):
            raise ValueError("set both channel and to, or neither (target then names a session)")
        return self


class CronSection(Section):
    """`[cron]`: the scheduler."""

    enabled: bool = Field(
        default=True,
        description=(
            "false: jobs are kept and can be run by hand (cron.run), but none fires on its own"
        ),
    )


class LogSection(Section):
    """`[log]`: logging."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="debug | info | warning | error (env CLAWGATE_LOG_LEVEL)"
    )
    format: Literal["text", "json"] = Field(default="text", description="text | json")


class ApiAuthSection(Section):
    """`[auth]`: the credential of the control link (control-plane spec §1.2)."""

    api_key: str | None = Field(
        default=None,
        repr=False,
        description="the daemon key the control link sends to the hub (env CLAWGATE_API_KEY)",
    )


class CloudSection(Section):
    """`[cloud]`: the control link to a hub; absent means the link is off."""

    url: str | None = Field(
        default=None,
        description=(
            "the hub's daemon endpoint, e.g. wss://hub.example.com/v1/daemon "
            "(env CLAWGATE_CLOUD_URL)"
        ),
    )
    allow_insecure: bool = Field(
        default=False, description="allow ws:// to a hub that is not on loopback"
    )


class PairingSection(Section):
    """`[pairing]`: how new devices get in."""

    auto_approve_loopback: bool = Field(
        default=True,
        description="approve devices connecting from loopback with the shared secret at once",
    )


class NodesSection(Section):
    """`[nodes]`: which commands nodes may offer beyond the default allowlist (spec §10.5)."""

    allow_commands: list[str] = Field(
        default_factory=list,
        description=(
            "exact names or `prefix.*`; `system.run` and the other dangerous commands need this"
        ),
    )
    deny_commands: list[str] = Field(
        default_factory=list, description="wins over the default allowlist and allow_commands"
    )
    approval_timeout_s: Annotated[int, Field(ge=1, le=3600)] = Field(
        default=120, description="an exec approval nobody answers is denied after this long"
    )


class IpcSection(Section):
    """`[ipc]`: the plugin socket (control-plane spec §2.8)."""

    request_timeout_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0, description="daemon-to-plugin calls without a timeout of their own"
    )
    method_timeouts_s: dict[str, Annotated[float, Field(gt=0, le=3600)]] = Field(
        default_factory=dict,
        description=(
            "per-method overrides of the plugin request timeouts, e.g. "
            '{"integration.install" = 600}'
        ),
    )

    @model_validator(mode="after")
    def _known_methods(self) -> IpcSection:
        unknown = sorted(set(self.method_timeouts_s) - set(DEFAULT_TIMEOUTS_S))
        if unknown:
            raise ValueError(
                f"no timeout to override for {unknown[0]!r}; choose from "
                + ", ".join(sorted(DEFAULT_TIMEOUTS_S))
            )
        return self


class QueueSection(Section):
    """`[queue]`: the offline command queue (control-plane spec §4.3)."""

    ttl_s: Annotated[int, Field(ge=1, le=86_400)] = Field(
        default=300, description="how long a command waits for a plugin"
    )
    max_total: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=1000, description="queued commands in all (more are rejected QUEUE_FULL)"
    )
    max_per_target: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=100, description="queued commands per capability / integration / plugin"
    )


class ReconcileSection(Section):
    """`[reconcile]`: the reconciliation engine (control-plane spec §5.8)."""

    drift_interval_s: Annotated[float, Field(ge=1, le=86_400)] = Field(
        default=600.0, description="how often live plugins' inventories are checked for drift"
    )


class AgentBackendKind(StrEnum):
    """Which backend answers agent runs."""

    ECHO = "echo"
    OPENAI = "openai"
    PLUGIN = "plugin"


class OpenAISection(Section):
    """`[agent.openai]`: an OpenAI-compatible `/v1/chat/completions` endpoint."""

    base_url: str = Field(
        default="http://127.0.0.1:8080/v1",
        description="the server's /v1 root (Ollama: http://127.0.0.1:11434/v1)",
    )
    model: str | None = Field(
        default=None, description='the model name; required with backend = "openai"'
    )
    api_key_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description="the api key is read from this environment variable, never from the file",
    )
    system_prompt: str | None = Field(
        default=None, description="a system message sent before the history"
    )
    connect_timeout_s: Annotated[float, Field(gt=0, le=300)] = Field(
        default=10.0, description="seconds to connect to the server"
    )
    read_timeout_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=120.0,
        description=(
            "longest silence allowed between two streamed chunks (and before the first one)"
        ),
    )
    max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=2, description="retries of failures before the first token (connect, 429, 5xx)"
    )
    retry_backoff_ms: Annotated[int, Field(ge=0, le=60_000)] = Field(
        default=500, description="first retry delay; doubles each retry"
    )
    temperature: Annotated[float, Field(ge=0, le=2)] | None = Field(
        default=None, description="sampling temperature; unset: the server's default"
    )

    @model_validator(mode="after")
    def _http_url(self) -> OpenAISection:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return self


class AgentSection(Section):
    """`[agent]`: the agent that answers chat and `agent` runs."""

    backend: AgentBackendKind = Field(
        default=AgentBackendKind.ECHO, description="echo | openai | plugin"
    )
    name: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        default="clawgate", description="the name chat shows (agent.identity.get)"
    )
    avatar: str | None = Field(
        default=None, description="an avatar URL or emoji chat shows beside the name"
    )
    timeout_s: Annotated[int, Field(ge=1, le=172_800)] = Field(
        default=3600,
        description=(
            "default run timeout (the `agent` method's `timeout` and chat's "
            "`timeoutMs` override it)"
        ),
    )
    echo_delay_ms: Annotated[int, Field(ge=0, le=10_000)] = Field(
        default=40,
        description=(
            "pause between echoed words, so streaming is visible; 0 streams as fast as it can"
        ),
    )
    history_limit: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=50, description="how many earlier messages of the session a backend is given"
    )
    max_input_chars: Annotated[int, Field(ge=1, le=64 * MIB)] = Field(
        default=AGENT_MAX_INPUT_CHARS,
        description=(
            "longest `agent` / `chat.send` message; a longer one is refused (INVALID_REQUEST)"
        ),
    )
    workspace: str = Field(
        default="workspace",
        description=(
            "the agent's workspace (relative to the home); the heartbeat reads HEARTBEAT.md there"
        ),
    )
    openai: OpenAISection = Field(default_factory=OpenAISection)

    @model_validator(mode="after")
    def _openai_needs_a_model(self) -> AgentSection:
        if self.backend is AgentBackendKind.OPENAI and not self.openai.model:
            raise ValueError('backend "openai" needs [agent.openai] model, e.g. "llama3.1"')
        return self


class OpenAIHttpSection(Section):
    """`[http.openai]`: the OpenAI-compatible `/v1` endpoints on the gateway port."""

    enabled: bool = Field(default=False, description="serve the OpenAI-compatible /v1 endpoints")
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * MIB)] = Field(
        default=OPENAI_MAX_BODY_BYTES, description="larger request bodies are answered 413"
    )


class HttpSection(Section):
    """`[http]`: HTTP surfaces served beside the WebSocket API."""

    openai: OpenAIHttpSection = Field(default_factory=OpenAIHttpSection)


_HOOK_NAME: Final = r"^[a-z0-9][a-z0-9_-]{0,63}$"
#: Routes of their own under the hooks path: no mapping may take these names.
RESERVED_HOOK_NAMES: Final = frozenset({"wake", "agent"})


class HookMappingSection(Section):
    """`[hooks.mappings.<name>]`: `POST <path>/<name>` turns a JSON body into an agent run."""

    template: Annotated[str, Field(min_length=1, max_length=16 * 1024)] = Field(
        description="`{{dotted.path}}` placeholders are replaced with the body's values"
    )
    secret_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description=(
            "the HMAC secret is read from this environment variable, never from "
            "the file. With it, the hook is authenticated by its signature "
            "(GitHub style) instead of the token"
        ),
    )
    signature_header: Annotated[str, Field(min_length=1)] = Field(
        default="X-Hub-Signature-256", description="the header carrying the HMAC signature"
    )
    allow_from: list[str] = Field(
        default_factory=list,
        description="source addresses or networks allowed to call this hook; empty allows any",
    )
    idempotency_header: str | None = Field(
        default=None, description="a header whose value dedupes retries (e.g. X-GitHub-Delivery)"
    )
    session_key: Annotated[str, Field(min_length=1, max_length=512)] | None = Field(
        default=None, description="the session runs land in; default `hook:<name>`"
    )

    @model_validator(mode="after")
    def _networks(self) -> HookMappingSection:
        for entry in self.allow_from:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"allow_from: {entry!r} is not an address or network") from None
        return self


class HooksSection(Section):
    """`[hooks]`: authenticated webhooks that wake the agent or start runs."""

    enabled: bool = Field(default=False, description="serve the webhooks")
    token: str | None = Field(
        default=None,
        repr=False,
        description="separate from the gateway token: a hook caller gets no operator access",
    )
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_-]*[A-Za-z0-9_-]$")] = Field(
        default="/hooks", description="the URL path the hooks are under"
    )
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * MIB)] = Field(
        default=HOOKS_MAX_BODY_BYTES, description="larger bodies are answered 413"
    )
    rate_limit_per_minute: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=HOOKS_RATE_PER_MINUTE,
        description="requests per minute per credential; more are answered 429 with Retry-After",
    )
    mappings: dict[Annotated[str, Field(pattern=_HOOK_NAME)], HookMappingSection] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _usable(self) -> HooksSection:
        taken = sorted(RESERVED_HOOK_NAMES & set(self.mappings))
        if taken:
            raise ValueError(f"mapping name {taken[0]!r} is reserved for the built-in route")
        if self.enabled and not self.token:
            raise ValueError('enabled hooks need a token: set [hooks] token = "<a long secret>"')
        return self


class CanvasSection(Section):
    """`[canvas]`: the canvas host, serving agent-written pages to nodes and browsers."""

    enabled: bool = Field(
        default=False,
        description=(
            "off by default: it is one more port and a file watcher, and only nodes use it"
        ),
    )
    port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=18793, description="the canvas host's HTTP port"
    )
    bind: str = Field(default="loopback", description="loopback | lan | an IP address")
    root: str | None = Field(
        default=None,
        description=(
            "the folder served; relative paths are under the home. Default: <home>/canvas"
        ),
    )
    live_reload: bool = Field(
        default=True, description="reload open pages when a file under root changes"
    )


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


def api_key_from_env() -> str | None:
    """Return the control-link api key from the environment, if set."""
    return os.environ.get(API_KEY_ENV) or None


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
