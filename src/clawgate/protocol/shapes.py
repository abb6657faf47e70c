"""Shapes the server sends: hello-ok, snapshot, presence, health, status (spec §3.4, §10.1).

The server builds these payloads as plain dicts on hot paths; these models describe them
for the JSON Schema, and tests validate real payloads against them so the two agree.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AgentHealth",
    "ChallengePayload",
    "ChannelHealth",
    "HealthSummary",
    "HeartbeatEvent",
    "HelloAuth3",
    "HelloAuth4",
    "HelloOk3",
    "HelloOk4",
    "Policy",
    "PresenceEntry",
    "PresencePayload",
    "SessionDefaults",
    "ShutdownPayload",
    "Snapshot",
    "StatusSummary",
    "TickPayload",
]

NonNegative = Annotated[int, Field(ge=0)]


class _Closed(BaseModel):
    # Built on first use: these describe payloads for the schema and for tests.
    model_config = ConfigDict(extra="forbid", defer_build=True)


class PresenceEntry(_Closed):
    """One client or the gateway itself in the presence list."""

    ts: int
    host: str | None = None
    ip: str | None = None
    version: str | None = None
    platform: str | None = None
    deviceFamily: str | None = None
    modelIdentifier: str | None = None
    mode: str | None = None
    lastInputSeconds: NonNegative | None = None
    reason: str | None = None
    tags: list[str] | None = None
    text: str | None = None
    deviceId: str | None = None
    roles: list[str] | None = None
    scopes: list[str] | None = None
    instanceId: str | None = None


class ChannelHealth(_Closed):
    """One messaging channel's state."""

    configured: bool
    running: bool
    linked: bool | None = None
    lastError: str | None = None


class HeartbeatSchedule(_Closed):
    """How often an agent's heartbeat runs."""

    enabled: bool
    every: str
    everyMs: int


class SessionRecent(_Closed):
    """A recently updated session."""

    key: str
    updatedAt: int


class SessionCounts(_Closed):
    """How many sessions there are and which changed last."""

    count: NonNegative
    recent: list[SessionRecent]


class AgentHealth(_Closed):
    """One agent in the health summary."""

    agentId: str
    isDefault: bool
    heartbeat: HeartbeatSchedule
    sessions: SessionCounts


class HealthSummary(_Closed):
    """The gateway's health, cached and refreshed periodically."""

    ok: bool
    ts: int
    durationMs: NonNegative
    channels: dict[str, ChannelHealth]
    channelOrder: list[str]
    channelLabels: dict[str, str]
    heartbeatSeconds: NonNegative
    defaultAgentId: str
    agents: list[AgentHealth]
    sessions: SessionCounts


class AgentHeartbeatStatus(_Closed):
    """One agent's heartbeat switch in the status summary."""

    agentId: str
    enabled: bool
    every: str
    everyMs: int


class HeartbeatStatus(_Closed):
    """Heartbeat settings in the status summary."""

    defaultAgentId: str
    agents: list[AgentHeartbeatStatus]


class AgentSessionCounts(_Closed):
    """Sessions of one agent."""

    agentId: str
    count: NonNegative
    recent: list[SessionRecent]


class StatusSessions(_Closed):
    """Sessions in the status summary."""

    count: NonNegative
    recent: list[SessionRecent]
    byAgent: list[AgentSessionCounts]


class ProcessMemory(_Closed):
    """Memory of the gateway process (admin only)."""

    rssBytes: NonNegative


class QueuedSystemEvent(_Closed):
    """A system event waiting for the next agent turn."""

    text: str
    ts: int


class StatusSummary(_Closed):
    """What `status` returns; `pid` and `processMemory` only for admin."""

    runtimeVersion: str
    uptimeMs: NonNegative
    heartbeat: HeartbeatStatus
    channelSummary: list[str]
    queuedSystemEvents: list[QueuedSystemEvent]
    sessions: StatusSessions
    pid: int | None = None
    processMemory: ProcessMemory | None = None


class HeartbeatEvent(_Closed):
    """The outcome of one heartbeat run."""

    ts: int
    status: Literal["sent", "ok-empty", "ok-token", "skipped", "failed"]
    to: str | None = None
    channel: str | None = None
    preview: str | None = None
    durationMs: NonNegative | None = None
    reason: str | None = None


class StateVersionShape(_Closed):
    """The presence and health counters."""

    presence: NonNegative
    health: NonNegative


class SessionDefaults(_Closed):
    """Which agent and session a client talks to by default."""

    defaultAgentId: str
    mainKey: str
    mainSessionKey: str
    scope: str


class Snapshot(_Closed):
    """State sent in `hello-ok`, taken atomically with broadcast registration."""

    presence: list[PresenceEntry]
    health: HealthSummary
    stateVersion: StateVersionShape
    uptimeMs: NonNegative
    sessionDefaults: SessionDefaults
    authMode: Literal["none", "token", "password"]
    configPath: str | None = None
    stateDir: str | None = None


class Policy(_Closed):
    """Limits the server enforces."""

    maxPayload: int
    maxBufferedBytes: int
    tickIntervalMs: int


class ServerInfo3(_Closed):
    """Server identity on protocol 3."""

    version: str
    connId: str


class ServerInfo4(_Closed):
    """Server identity on protocol 4."""

    version: str
    connId: str
    bootId: str


class Features3(_Closed):
    """Methods and events on protocol 3."""

    methods: list[str]
    events: list[str]


class Features4(_Closed):
    """Methods, events and capabilities on protocol 4."""

    methods: list[str]
    events: list[str]
    capabilities: list[str]


class HelloAuth3(_Closed):
    """Protocol 3 auth block, only when a device token is returned."""

    deviceToken: str
    role: str
    scopes: list[str]
    issuedAtMs: int


class HelloAuth4(_Closed):
    """Protocol 4 auth block: the effective role and scopes."""

    role: str
    scopes: list[str]
    deviceToken: str | None = None
    issuedAtMs: int | None = None


class HelloOk3(_Closed):
    """`hello-ok` on protocol 3."""

    type: Literal["hello-ok"]
    protocol: Literal[3]
    server: ServerInfo3
    features: Features3
    snapshot: Snapshot
    canvasHostUrl: str | None = None
    auth: HelloAuth3 | None = None
    policy: Policy


class HelloOk4(_Closed):
    """`hello-ok` on protocol 4."""

    type: Literal["hello-ok"]
    protocol: Literal[4]
    server: ServerInfo4
    features: Features4
    snapshot: Snapshot
    auth: HelloAuth4
    policy: Policy


class ChallengePayload(_Closed):
    """`connect.challenge`."""

    nonce: str
    ts: int


class TickPayload(_Closed):
    """`tick`."""

    ts: int


class ShutdownPayload(_Closed):
    """`shutdown`; `restartExpectedMs` is null on protocol 4 for a stop, absent on 3."""

    reason: Literal["gateway stopping", "gateway restarting"]
    restartExpectedMs: int | None = None


class PresencePayload(_Closed):
    """`presence`: the whole list."""

    presence: list[PresenceEntry]
