"""Build the backend `[agent] backend` names."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from ..config import AgentBackendKind, AgentSection
from ..ipc import PluginRegistry
from .backend import AgentBackend
from .echo import EchoBackend

__all__ = ["build_backend"]


def build_backend(
    settings: AgentSection,
    plugins: Callable[[], PluginRegistry | None],
    environ: Mapping[str, str] | None = None,
) -> tuple[AgentBackend, dict[str, Any]]:
    """Return the configured backend and the plugin-to-daemon IPC methods it serves."""
    # The openai and plugin backends are imported when chosen: the default (echo) gateway
    # should not pay their memory.
    if settings.backend is AgentBackendKind.OPENAI:
        from .openai import OpenAIBackend

        env = os.environ if environ is None else environ
        name = settings.openai.api_key_env
        key = env.get(name) if name else None
        missing = None
        if name and not key:
            missing = f"the environment variable {name} holding the api key is not set"
        return OpenAIBackend(settings.openai, key, key_missing=missing), {}
    if settings.backend is AgentBackendKind.PLUGIN:
        from .plugin import PluginBackend

        backend = PluginBackend(plugins, settings.timeout_s)
        return backend, backend.handlers()
    return EchoBackend(settings.echo_delay_ms / 1000), {}
