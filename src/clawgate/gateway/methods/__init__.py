"""Built-in gateway methods and events, listed in one place (spec §10.0 order)."""

from __future__ import annotations

from ...protocol.events import EventGate, EventSpec
from ...protocol.shapes import (
    ChallengePayload,
    HealthSummary,
    HeartbeatEvent,
    PresencePayload,
    ShutdownPayload,
    TickPayload,
)
from ..registry import MethodRegistry
from . import (
    agent,
    agents,
    chat,
    cloud,
    config,
    devices,
    integrations,
    logs,
    models,
    operator,
    plugins,
    sessions,
    system,
)

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
        agent.agent,
        agent.agent_wait,
        # Not in §10.0's list (§13 reserves it); served after `agent.wait` for the chat UI.
        agent.agent_identity_get,
        # §13 reserves these; OpenClaw clients call both (`/v1/models` lists the same agents).
        agents.agents_list,
        models.models_list,
        chat.chat_send,
        chat.chat_history,
        chat.chat_abort,
        chat.chat_inject,
        # OpenClaw's Control UI opens a chat with it (issue 21).
        chat.chat_startup,
        sessions.sessions_list,
        sessions.sessions_get,
        sessions.sessions_create,
        sessions.sessions_reset,
        sessions.sessions_delete,
        sessions.sessions_subscribe,
        sessions.sessions_unsubscribe,
        sessions.sessions_describe,
        sessions.sessions_messages_subscribe,
        sessions.sessions_messages_unsubscribe,
        sessions.sessions_observer_visibility,
        devices.device_pair_list,
        devices.device_pair_approve,
        devices.device_pair_reject,
        devices.device_pair_remove,
        devices.device_token_rotate,
        devices.device_token_revoke,
        plugins.plugins_list,
        plugins.queue_list,
        integrations.integrations_list,
        integrations.integrations_apply,
        cloud.cloud_status,
        config.config_get,
        config.config_set,
        config.config_patch,
        config.config_schema,
        config.config_schema_lookup,
        # What OpenClaw's Control UI asks every gateway (issue 21).
        operator.system_info,
        operator.update_status,
        operator.question_list,
        operator.plugin_approval_list,
        operator.openclaw_approval_list,
        operator.diagnostics_lanes,
        operator.usage_status,
    ):
        registry.register(handler)
    for event in (
        EventSpec("connect.challenge", ChallengePayload, None),
        EventSpec("tick", TickPayload, EventGate.ALL),
        EventSpec("shutdown", ShutdownPayload, EventGate.ALL),
        EventSpec("presence", PresencePayload, EventGate.OPERATORS),
        EventSpec("health", HealthSummary, EventGate.ALL),
        EventSpec("heartbeat", HeartbeatEvent, EventGate.READ),
        EventSpec("agent", agent.AgentEventPayload, EventGate.READ),
        EventSpec("chat", chat.ChatEventPayload, EventGate.READ),
        EventSpec("cloud.status", cloud.CloudStatus, EventGate.READ),
        # Only to `read` connections that called sessions.subscribe.
        EventSpec("sessions.changed", sessions.SessionsChangedPayload, EventGate.READ),
        # Only to `read` connections following that session (sessions.messages.subscribe).
        EventSpec("session.message", sessions.SessionMessagePayload, EventGate.READ),
        EventSpec("device.pair.requested", devices.PendingRequestShape, EventGate.PAIRING),
        EventSpec("device.pair.resolved", devices.DevicePairResolved, EventGate.PAIRING),
    ):
        registry.register_event(event)


def build_registry() -> MethodRegistry:
    """Return a registry holding every built-in method and event."""
    registry = MethodRegistry()
    register_builtin_methods(registry)
    return registry
