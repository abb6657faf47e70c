"""Built-in gateway methods and events, listed in one place (spec §10.0 order)."""

from __future__ import annotations

from ...protocol.events import EventGate
from ...protocol.shapes import (
    ChallengePayload,
    HealthSummary,
    HeartbeatEvent,
    PresencePayload,
    ShutdownPayload,
    TickPayload,
)
from ..registry import EventSpec, MethodRegistry
from . import config, logs, system

__all__ = ["build_registry", "register_builtin_methods"]


def register_builtin_methods(registry: MethodRegistry) -> None:
    """Register every method and event this build implements, in the spec's order."""
    for handler in (
        system.health,
        system.status,
        system.system_presence,
        system.system_event,
        system.last_heartbeat,
        system.set_heartbeats,
        logs.logs_tail,
        config.config_get,
        config.config_set,
        config.config_patch,
        config.config_schema,
    ):
        registry.register(handler)
    for event in (
        EventSpec("connect.challenge", ChallengePayload, None),
        EventSpec("tick", TickPayload, EventGate.ALL),
        EventSpec("shutdown", ShutdownPayload, EventGate.ALL),
        EventSpec("presence", PresencePayload, EventGate.OPERATORS),
        EventSpec("health", HealthSummary, EventGate.ALL),
        EventSpec("heartbeat", HeartbeatEvent, EventGate.READ),
    ):
        registry.register_event(event)


def build_registry() -> MethodRegistry:
    """Return a registry holding every built-in method and event."""
    registry = MethodRegistry()
    register_builtin_methods(registry)
    return registry
