"""Built-in gateway methods and events, listed in one place (spec §10.0 order).

Each method is listed by name with the module and function that serve it; the module is
imported on the method's first call (`MethodRegistry.declare`), so an idle gateway holds
none of their params and result models. `tests/unit/test_method_index.py` fails when this
table and the `@method` declarations disagree, or when a method module loads at start.
"""

from __future__ import annotations

from typing import Final

from ...protocol.events import EventGate, EventSpec
from ..registry import Deferred, MethodRegistry

__all__ = ["EVENTS", "METHODS", "build_registry", "register_builtin_methods"]


def _deferred(module: str, attr: str) -> Deferred:
    """Name `attr` of the method module `module` without importing it."""
    return Deferred(f"{__name__}.{module}", attr)


def _shape(attr: str) -> Deferred:
    """Name a payload model of `protocol.shapes`: only the schema loads them."""
    return Deferred("clawgate.protocol.shapes", attr)


# (method name, module in this package, the function declared with @method there)
METHODS: Final[tuple[tuple[str, str, str], ...]] = (
    ("health", "system", "health"),
    ("status", "system", "status"),
    ("system-presence", "system", "system_presence"),
    ("system-event", "system", "system_event"),
    ("last-heartbeat", "system", "last_heartbeat"),
    ("set-heartbeats", "system", "set_heartbeats"),
    ("wake", "system", "wake"),
    ("logs.tail", "logs", "logs_tail"),
    ("send", "channels", "send"),
    ("agent", "agent", "agent"),
    ("agent.wait", "agent", "agent_wait"),
    # Not in §10.0's list (§13 reserves it); served after `agent.wait` for the chat UI.
    ("agent.identity.get", "agent", "agent_identity_get"),
    # §13 reserves these; OpenClaw clients call both (`/v1/models` lists the same agents).
    ("agents.list", "agents", "agents_list"),
    ("models.list", "models", "models_list"),
    ("chat.send", "chat", "chat_send"),
    ("chat.history", "chat", "chat_history"),
    ("chat.abort", "chat", "chat_abort"),
    ("chat.inject", "chat", "chat_inject"),
    # OpenClaw's Control UI opens a chat with it (issue 21).
    ("chat.startup", "chat", "chat_startup"),
    ("sessions.list", "sessions", "sessions_list"),
    ("sessions.get", "sessions", "sessions_get"),
    ("sessions.create", "sessions", "sessions_create"),
    ("sessions.reset", "sessions", "sessions_reset"),
    ("sessions.delete", "sessions", "sessions_delete"),
    ("sessions.subscribe", "sessions", "sessions_subscribe"),
    ("sessions.unsubscribe", "sessions", "sessions_unsubscribe"),
    ("sessions.describe", "sessions", "sessions_describe"),
    ("sessions.messages.subscribe", "sessions", "sessions_messages_subscribe"),
    ("sessions.messages.unsubscribe", "sessions", "sessions_messages_unsubscribe"),
    ("sessions.observer.visibility", "sessions", "sessions_observer_visibility"),
    ("sessions.usage", "usage", "sessions_usage"),
    ("node.list", "nodes", "node_list"),
    ("node.describe", "nodes", "node_describe"),
    ("node.rename", "nodes", "node_rename"),
    ("node.invoke", "nodes", "node_invoke"),
    ("node.invoke.result", "nodes", "node_invoke_result"),
    ("node.event", "nodes", "node_event"),
    # OpenClaw's node host calls these on every connect (§15): kept per node.
    ("node.runnerInventory.update", "nodes", "node_runner_inventory_update"),
    ("node.skills.update", "nodes", "node_skills_update"),
    ("node.pluginTools.update", "nodes", "node_plugin_tools_update"),
    ("node.pair.list", "nodes", "node_pair_list"),
    ("node.pair.approve", "nodes", "node_pair_approve"),
    ("node.pair.reject", "nodes", "node_pair_reject"),
    ("exec.approval.list", "approvals", "exec_approval_list"),
    ("exec.approval.resolve", "approvals", "exec_approval_resolve"),
    ("exec.approvals.get", "approvals", "exec_approvals_get"),
    ("exec.approvals.set", "approvals", "exec_approvals_set"),
    # OpenClaw's Control UI approvals page (issue 21): closed approvals, standing grants.
    ("approval.history", "approvals", "approval_history"),
    ("exec.approval.grants.list", "approvals", "exec_approval_grants_list"),
    ("device.pair.list", "devices", "device_pair_list"),
    ("device.pair.approve", "devices", "device_pair_approve"),
    ("device.pair.reject", "devices", "device_pair_reject"),
    ("device.pair.remove", "devices", "device_pair_remove"),
    ("device.token.rotate", "devices", "device_token_rotate"),
    ("device.token.revoke", "devices", "device_token_revoke"),
    ("cron.list", "cron", "cron_list"),
    # Not in §10.0's list: OpenClaw's `cron status` calls it.
    ("cron.status", "cron", "cron_status"),
    ("cron.add", "cron", "cron_add"),
    ("cron.update", "cron", "cron_update"),
    ("cron.remove", "cron", "cron_remove"),
    ("cron.run", "cron", "cron_run"),
    ("cron.runs", "cron", "cron_runs"),
    ("plugins.list", "plugins", "plugins_list"),
    # OpenClaw's Control UI plugins page calls it, advertised or not (issue 21).
    ("plugins.catalog.browse", "plugins", "plugins_catalog_browse"),
    ("queue.list", "plugins", "queue_list"),
    ("integrations.list", "integrations", "integrations_list"),
    ("integrations.apply", "integrations", "integrations_apply"),
    ("cloud.status", "cloud", "cloud_status"),
    ("config.get", "config", "config_get"),
    ("config.set", "config", "config_set"),
    ("config.patch", "config", "config_patch"),
    ("config.schema", "config", "config_schema"),
    ("config.schema.lookup", "config", "config_schema_lookup"),
    # What OpenClaw's Control UI asks every gateway (issue 21).
    ("system.info", "operator", "system_info"),
    ("update.status", "operator", "update_status"),
    ("question.list", "operator", "question_list"),
    ("plugin.approval.list", "operator", "plugin_approval_list"),
    ("openclaw.approval.list", "operator", "openclaw_approval_list"),
    ("diagnostics.lanes", "operator", "diagnostics_lanes"),
    ("usage.status", "operator", "usage_status"),
    ("themes.list", "operator", "themes_list"),
    # §13 reserves channels.*; clawgate serves them (see methods/channels.py).
    ("channels.status", "channels", "channels_status"),
    ("channels.logout", "channels", "channels_logout"),
    ("channels.login", "channels", "channels_login"),
    ("channels.pairing.list", "channels", "channels_pairing_list"),
    ("channels.pairing.approve", "channels", "channels_pairing_approve"),
    ("channels.pairing.reject", "channels", "channels_pairing_reject"),
    ("channels.pairing.dismiss", "channels", "channels_pairing_dismiss"),
    # Linking a channel account by QR code (personal WhatsApp), OpenClaw's names.
    ("web.login.start", "web", "web_login_start"),
    ("web.login.wait", "web", "web_login_wait"),
    # OpenClaw's systems page: the gateway host and the nodes (issue 21).
    ("environments.list", "environments", "environments_list"),
)

EVENTS: Final = (
    EventSpec("connect.challenge", _shape("ChallengePayload"), None),
    EventSpec("tick", _shape("TickPayload"), EventGate.ALL),
    EventSpec("shutdown", _shape("ShutdownPayload"), EventGate.ALL),
    EventSpec("presence", _shape("PresencePayload"), EventGate.OPERATORS),
    EventSpec("health", _shape("HealthSummary"), EventGate.ALL),
    EventSpec("heartbeat", _shape("HeartbeatEvent"), EventGate.READ),
    EventSpec("agent", _deferred("agent", "AgentEventPayload"), EventGate.READ),
    EventSpec("chat", _deferred("chat", "ChatEventPayload"), EventGate.READ),
    EventSpec("cloud.status", _deferred("cloud", "CloudStatus"), EventGate.READ),
    # Only to `read` connections that called sessions.subscribe.
    EventSpec("sessions.changed", _deferred("sessions", "SessionsChangedPayload"), EventGate.READ),
    # Only to `read` connections following that session (sessions.messages.subscribe).
    EventSpec("session.message", _deferred("sessions", "SessionMessagePayload"), EventGate.READ),
    # Targeted at one node: no gate, no seq.
    EventSpec("node.invoke.request", _deferred("nodes", "InvokeRequestPayload"), None),
    EventSpec("node.invoke.cancel", _deferred("nodes", "InvokeCancelPayload"), None),
    EventSpec("node.pair.requested", _deferred("nodes", "NodePairRequestShape"), EventGate.PAIRING),
    EventSpec("node.pair.resolved", _deferred("nodes", "NodePairResolved"), EventGate.PAIRING),
    EventSpec(
        "exec.approval.requested",
        _deferred("approvals", "ExecApprovalRequested"),
        EventGate.APPROVALS,
    ),
    EventSpec(
        "exec.approval.resolved",
        _deferred("approvals", "ExecApprovalResolved"),
        EventGate.APPROVALS,
    ),
    EventSpec("cron", _deferred("cron", "CronEventPayload"), EventGate.READ),
    EventSpec(
        "device.pair.requested", _deferred("devices", "PendingRequestShape"), EventGate.PAIRING
    ),
    EventSpec(
        "device.pair.resolved", _deferred("devices", "DevicePairResolved"), EventGate.PAIRING
    ),
)


def register_builtin_methods(registry: MethodRegistry) -> None:
    """Register every method and event this build implements, in the spec's order."""
    for name, module, handler in METHODS:
        registry.declare(name, _deferred(module, handler))
    for event in EVENTS:
        registry.register_event(event)


def build_registry() -> MethodRegistry:
    """Return a registry holding every built-in method and event."""
    registry = MethodRegistry()
    register_builtin_methods(registry)
    return registry
