"""The agent's tables: `[agent]` and its OpenAI-compatible backend, `[agent.openai]`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, model_validator

from ..protocol.limits import AGENT_MAX_INPUT_CHARS, MIB
from .section import ENV_NAME, Section

__all__ = ["AgentBackendKind", "AgentSection", "OpenAISection"]


class AgentBackendKind(StrEnum):
    """Which backend answers agent runs."""

    ECHO = "echo"
    OPENAI = "openai"
    PLUGIN = "plugin"


class OpenAISection(Section):
    """`[agent.openai]`: an OpenAI-compatible `/v1/chat/completions` endpoint."""

    base_url: str = Field(
        default="http://127.0.0.1:8080/v1",
        description="the server's /v1 root (Ollama: http://127.0.0.1:11434/v1)",
    )
    model: str | None = Field(
        default=None, description='the model name; required with backend = "openai"'
    )
    api_key_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description="the api key is read from this environment variable, never from the file",
    )
    system_prompt: str | None = Field(
        default=None, description="a system message sent before the history"
    )
    connect_timeout_s: Annotated[float, Field(gt=0, le=300)] = Field(
        default=10.0, description="seconds to connect to the server"
    )
    read_timeout_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=120.0,
        description=(
            "longest silence allowed between two streamed chunks (and before the first one)"
        ),
    )
    max_retries: Annotated[int, Field(ge=0, le=10)] = Field(
        default=2, description="retries of failures before the first token (connect, 429, 5xx)"
    )
    retry_backoff_ms: Annotated[int, Field(ge=0, le=60_000)] = Field(
        default=500, description="first retry delay; doubles each retry"
    )
    temperature: Annotated[float, Field(ge=0, le=2)] | None = Field(
        default=None, description="sampling temperature; unset: the server's default"
    )

    @model_validator(mode="after")
    def _http_url(self) -> OpenAISection:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return self


class AgentSection(Section):
    """`[agent]`: the agent that answers chat and `agent` runs."""

    backend: AgentBackendKind = Field(
        default=AgentBackendKind.ECHO, description="echo | openai | plugin"
    )
    name: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        default="clawgate", description="the name chat shows (agent.identity.get)"
    )
    avatar: str | None = Field(
        default=None, description="an avatar URL or emoji chat shows beside the name"
    )
    timeout_s: Annotated[int, Field(ge=1, le=172_800)] = Field(
        default=3600,
        description=(
            "default run timeout (the `agent` method's `timeout` and chat's "
            "`timeoutMs` override it)"
        ),
    )
    echo_delay_ms: Annotated[int, Field(ge=0, le=10_000)] = Field(
        default=40,
        description=(
            "pause between echoed words, so streaming is visible; 0 streams as fast as it can"
        ),
    )
    history_limit: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=50, description="how many earlier messages of the session a backend is given"
    )
    max_input_chars: Annotated[int, Field(ge=1, le=64 * MIB)] = Field(
        default=AGENT_MAX_INPUT_CHARS,
        description=(
            "longest `agent` / `chat.send` message; a longer one is refused (INVALID_REQUEST)"
        ),
    )
    workspace: str = Field(
        default="workspace",
        description=(
            "the agent's workspace (relative to the home); the heartbeat reads HEARTBEAT.md there"
        ),
    )
    openai: OpenAISection = Field(default_factory=OpenAISection)

    @model_validator(mode="after")
    def _openai_needs_a_model(self) -> AgentSection:
        if self.backend is AgentBackendKind.OPENAI and not self.openai.model:
            raise ValueError('backend "openai" needs [agent.openai] model, e.g. "llama3.1"')
        return self
