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
    approvals,
    channels,
    chat,
    cloud,
    config,
    cron,
    devices,
    environments,
    integrations,
    logs,
    models,
    nodes,
    operator,
    plugins,
    sessions,
    system,
    usage,
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
        system.wake,
        logs.logs_tail,
        channels.send,
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
        usage.sessions_usage,
        nodes.node_list,
        nodes.node_describe,
        nodes.node_rename,
        nodes.node_invoke,
        nodes.node_invoke_result,
        nodes.node_event,
        # OpenClaw's node host calls these on every connect (§15): kept per node.
        nodes.node_runner_inventory_update,
        nodes.node_skills_update,
        nodes.node_plugin_tools_update,
        nodes.node_pair_list,
        nodes.node_pair_approve,
        nodes.node_pair_reject,
        approvals.exec_approval_list,
        approvals.exec_approval_resolve,
        approvals.exec_approvals_get,
        approvals.exec_approvals_set,
        devices.device_pair_list,
        devices.device_pair_approve,
        devices.device_pair_reject,
        devices.device_pair_remove,
        devices.device_token_rotate,
        devices.device_token_revoke,
        cron.cron_list,
        # Not in §10.0's list: OpenClaw's `cron status` calls it.
        cron.cron_status,
        cron.cron_add,
        cron.cron_update,
        cron.cron_remove,
        cron.cron_run,
        cron.cron_runs,
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
        operator.themes_list,
        # §13 reserves channels.*; clawgate serves them (see methods/channels.py).
        channels.channels_status,
        channels.channels_logout,
        channels.channels_login,
        channels.channels_pairing_list,
        channels.channels_pairing_approve,
        channels.channels_pairing_reject,
        channels.channels_pairing_dismiss,
        # OpenClaw's systems page: the gateway host and the nodes (issue 21).
        environments.environments_list,
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
        # Targeted at one node: no gate, no seq.
        EventSpec("node.invoke.request", nodes.InvokeRequestPayload, None),
        EventSpec("node.invoke.cancel", nodes.InvokeCancelPayload, None),
        EventSpec("node.pair.requested", nodes.NodePairRequestShape, EventGate.PAIRING),
        EventSpec("node.pair.resolved", nodes.NodePairResolved, EventGate.PAIRING),
        EventSpec("exec.approval.requested", approvals.ExecApprovalRequested, EventGate.APPROVALS),
        EventSpec("exec.approval.resolved", approvals.ExecApprovalResolved, EventGate.APPROVALS),
        EventSpec("cron", cron.CronEventPayload, EventGate.READ),
        EventSpec("device.pair.requested", devices.PendingRequestShape, EventGate.PAIRING),
        EventSpec("device.pair.resolved", devices.DevicePairResolved, EventGate.PAIRING),
    ):
        registry.register_event(event)


def build_registry() -> MethodRegistry:
    """Return a registry holding every built-in method and event."""
    registry = MethodRegistry()
    register_builtin_methods(registry)
    return registry
