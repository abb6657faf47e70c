"""How live plugins are described to operators, plugins and the hub (spec §2.7, §3.5)."""

from __future__ import annotations

from typing import Any

from .connection import rfc3339_ms
from .registry import PluginRegistry, PluginSession

__all__ = ["describe_plugin", "describe_plugins"]


def describe_plugin(session: PluginSession) -> dict[str, Any]:
    """Describe one live plugin: name, version, capabilities, when it connected."""
    return {
        "name": session.name,
        "version": session.version,
        "capabilities": list(session.capabilities),
        "connectedAt": rfc3339_ms(session.connected_at),
    }


def describe_plugins(registry: PluginRegistry) -> list[dict[str, Any]]:
    """Describe every live plugin, oldest registration first."""
    return [describe_plugin(session) for session in registry.sessions()]
