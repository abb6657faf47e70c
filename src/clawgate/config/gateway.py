"""The gateway server's tables: `[gateway]` (its auth and TLS), `[pairing]`, `[nodes]`, `[log]`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ..automation.zones import get_zone
from ..protocol.auth import AuthMode
from ..protocol.limits import (
    HTTP_CONNECTIONS_PER_IP_MAX,
    HTTP_CONNECTIONS_PER_IP_MIN,
    HTTP_READ_TIMEOUT_MAX_MS,
    HTTP_READ_TIMEOUT_MIN_MS,
    Limits,
)
from .section import Section

__all__ = [
    "AuthSettings",
    "GatewaySection",
    "LogSection",
    "NodesSection",
    "PairingSection",
    "TlsSection",
]


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


class LogSection(Section):
    """`[log]`: logging."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="debug | info | warning | error (env CLAWGATE_LOG_LEVEL)"
    )
    format: Literal["text", "json"] = Field(default="text", description="text | json")


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
