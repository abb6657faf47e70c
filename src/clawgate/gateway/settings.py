"""Everything a gateway is started with, resolved from config, flags and environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..automation.heartbeat_rules import HeartbeatSettings
from ..automation.zones import system_zone_name
from ..canvas.settings import CanvasSettings
from ..cloud.settings import LinkSettings
from ..config import AgentSection, HooksSection, OpenAIHttpSection
from ..protocol.auth import SharedSecretAuth
from ..protocol.limits import EXEC_APPROVAL_TTL_MS, Limits
from ..tls import TlsMaterial

if TYPE_CHECKING:  # imported only when a channel is configured (service/runtime.py)
    from ..channels.settings import ChannelSettings

__all__ = ["GatewaySettings", "NodeSettings", "PluginSettings"]


@dataclass(frozen=True, slots=True)
class PluginSettings:
    """The `[ipc]`, `[queue]` and `[reconcile]` settings (control-plane spec §2.8, §4.3, §5.8)."""

    request_timeout_s: float = 30.0
    method_timeouts_s: Mapping[str, float] = field(default_factory=dict)
    queue_ttl_s: int = 300
    queue_max_total: int = 1000
    queue_max_per_target: int = 100
    drift_interval_s: float = 600.0


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """The `[nodes]` settings: which node commands may be offered, how long approvals wait."""

    allow_commands: tuple[str, ...] = ()
    deny_commands: tuple[str, ...] = ()
    approval_timeout_ms: int = EXEC_APPROVAL_TTL_MS


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Everything the server needs, resolved from config, flags and environment."""

    home: Path
    auth: SharedSecretAuth
    host: str = "127.0.0.1"
    port: int = 18789
    limits: Limits = field(default_factory=Limits)
    allowed_origins: frozenset[str] = frozenset()
    heartbeat: HeartbeatSettings = field(default_factory=HeartbeatSettings)
    # The IANA zone of cron jobs without `tz` and of heartbeat active hours.
    timezone: str = field(default_factory=system_zone_name)
    # False: cron jobs are kept and run by hand only.
    cron_enabled: bool = True
    # The agent's workspace (HEARTBEAT.md); None: `<home>/workspace`.
    workspace: Path | None = None
    config_path: Path | None = None
    log_file: Path | None = None
    # True when the shared secret came from a flag or the environment: file edits leave it.
    auth_pinned: bool = False
    state_db: Path | None = None
    # Approve pairing silently for loopback peers without forwarding headers (spec §6).
    auto_approve_loopback: bool = True
    tls: TlsMaterial | None = None
    # The plugin IPC socket; None serves no plugins (needs `state_db` for the queue).
    ipc_socket: Path | None = None
    plugins: PluginSettings = field(default_factory=PluginSettings)
    # The control link to a hub; None when `[cloud] url` or the api key is missing.
    cloud: LinkSettings | None = None
    # The agent answering chat and `agent` runs (needs `state_db` for sessions).
    agent: AgentSection = field(default_factory=AgentSection)
    # The OpenAI-compatible `/v1` endpoints (off by default).
    openai_http: OpenAIHttpSection = field(default_factory=OpenAIHttpSection)
    # Webhooks (off by default), and each mapping's HMAC secret read from its `secret_env`.
    hooks: HooksSection = field(default_factory=HooksSection)
    hook_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    # The canvas host; None when `[canvas] enabled` is false.
    canvas: CanvasSettings | None = None
    # An OpenClaw Control UI bundle served at /control/; None serves none.
    control_ui_root: Path | None = None
    nodes: NodeSettings = field(default_factory=NodeSettings)
    # The messaging channel accounts; None when `[channels]` configures none.
    channels: ChannelSettings | None = None
