"""Example clawgate plugin that applies integrations to a directory."""

from .store import DirIntegrations, build_plugin

__all__ = ["DirIntegrations", "build_plugin"]
