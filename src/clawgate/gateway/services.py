"""The named services a method handler may use, handed to it in its `CallContext`."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..automation.delivery import DeliveryRouter
from ..config import AgentSection
from ..protocol.limits import Limits
from .agent_service import AgentService
from .channel_service import ChannelService
from .config_service import ConfigService
from .cron_host import CronHost
from .health import HealthMonitor
from .heartbeat import HeartbeatRunner
from .nodes import NodeService
from .pairing import PairingService
from .plugin_side import PluginSide
from .presence import PresenceService
from .system_events import SystemEvents

if TYPE_CHECKING:  # loaded only when the canvas runs
    from ..canvas.server import CanvasHost

__all__ = ["GatewayInfo", "Services"]


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    """Facts about this gateway process: when it started, where it keeps its files."""

    boot_id: str
    started_ms: int
    clock: Callable[[], int]
    home: Path
    agent: AgentSection
    log_file: Path | None = None
    # Proves this process to local clients (`protocol/run_identity.py`); in the 0600 state
    # file only, never on the wire.
    identity_key: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)

    def uptime_ms(self) -> int:
        """Return milliseconds since start."""
        return max(self.clock() - self.started_ms, 0)


@dataclass(frozen=True, slots=True)
class Services:
    """Everything handlers reach: each a service with a narrow job, none the server itself."""

    info: GatewayInfo
    clock: Callable[[], int]
    limits: Limits
    presence: PresenceService
    health: HealthMonitor
    heartbeats: HeartbeatRunner
    system_events: SystemEvents
    pairing: PairingService
    config: ConfigService
    # None when the gateway runs without a state store (sessions need one).
    agents: AgentService | None
    # None when the gateway serves no plugin socket.
    plugins: PluginSide | None
    # Where automated replies go: every channel of `channels`, WebChat included (none
    # without a state store).
    delivery: DeliveryRouter
    # None when the gateway runs without a state store (jobs live in state.db).
    cron: CronHost | None
    # None when the canvas host is off; `page_url` builds `canvas.present|navigate` URLs.
    canvas: CanvasHost | None = None
    # None when the gateway runs without a state store.
    nodes: NodeService | None = None
    # WebChat and the configured messaging channels; None without a state store.
    channels: ChannelService | None = None
