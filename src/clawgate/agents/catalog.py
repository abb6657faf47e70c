"""The agents this gateway serves and the model each uses, read from `[agent]`.

One place answers "which agents, which models", so the OpenAI-compatible `/v1/models`
and the WebSocket `models.list` and `agents.list` cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..config import AgentBackendKind, AgentSection
from .sessions import DEFAULT_AGENT_ID, canonical_key, split_key

__all__ = ["MODEL_PREFIX", "AgentEntry", "agent_catalog", "agent_for_model", "session_key_for"]

#: An agent's model id on the OpenAI-compatible API is `clawgate:<agentId>`.
MODEL_PREFIX: Final = "clawgate:"
_SESSION_KEY_MAX: Final = 512


@dataclass(frozen=True, slots=True)
class AgentEntry:
    """One agent and the backend model answering it."""

    agent_id: str
    name: str
    avatar: str | None
    provider: str  # who serves the model: "clawgate" (echo), "openai", "plugin"
    model: str  # the provider's model id

    @property
    def model_id(self) -> str:
        """The agent as an OpenAI-compatible model id."""
        return MODEL_PREFIX + self.agent_id

    @property
    def primary_model(self) -> str:
        """The model as `<provider>/<model>`, the way OpenClaw names models."""
        return f"{self.provider}/{self.model}"


def _backend_model(settings: AgentSection) -> tuple[str, str]:
    if settings.backend is AgentBackendKind.OPENAI:
        return "openai", settings.openai.model or "default"
    if settings.backend is AgentBackendKind.PLUGIN:
        return "plugin", "agent"
    return "clawgate", "echo"


def agent_catalog(settings: AgentSection) -> tuple[AgentEntry, ...]:
    """Return every configured agent, the default one first."""
    provider, model = _backend_model(settings)
    return (AgentEntry(DEFAULT_AGENT_ID, settings.name, settings.avatar, provider, model),)


def agent_for_model(catalog: tuple[AgentEntry, ...], model: str | None) -> AgentEntry | None:
    """Return the agent a request's `model` names; no model means the default agent.

    `clawgate:<agentId>` is the documented form; a bare agent id is accepted too.
    """
    if model is None or model == "":
        return catalog[0]
    agent_id = model.removeprefix(MODEL_PREFIX)
    for entry in catalog:
        if entry.agent_id == agent_id:
            return entry
    return None


def session_key_for(entry: AgentEntry, raw: str) -> str:
    """Return `raw` as a session key of `entry`'s agent (a bare name is the agent's).

    Raises:
        ValueError: `raw` is malformed or names another agent's session; the message says so.
    """
    key = canonical_key(raw, entry.agent_id)
    parts = split_key(key)
    if parts is None or len(key) > _SESSION_KEY_MAX:
        raise ValueError(f"{raw!r} is not a session key: use a name, or agent:<agentId>:<name>")
    if parts[0] != entry.agent_id:
        raise ValueError(f"session {key!r} belongs to agent {parts[0]!r}, not {entry.agent_id!r}")
    return key
