"""Params and helpers shared by the agent, chat and sessions methods."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ...agents.catalog import agent_catalog
from ...agents.sessions import DEFAULT_AGENT_ID, canonical_key, split_key
from ...protocol.detail_codes import UNKNOWN_AGENT_ID
from ...protocol.errors import InvalidRequest, Unavailable

if TYPE_CHECKING:
    from ..agent_service import AgentService
    from ..context import CallContext

__all__ = [
    "EmptyParams",
    "IdempotencyKey",
    "Ignored",
    "OpenResult",
    "Params",
    "Result",
    "SessionKey",
    "agents_of",
    "avatar_of",
    "check_agent_id",
    "resolve_key",
]

IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=256)]
SessionKey = Annotated[str, StringConstraints(min_length=1, max_length=512)]

#: A param OpenClaw 2026.9.6's schema defines and clawgate accepts without acting on it
#: (spec §2.1: a newer client's known fields are not refused). Every such field is listed
#: in docs/openclaw-control-ui.md; `tests/unit/test_openclaw_params.py` keeps the list whole.
IGNORED_MARK = "x-clawgate-ignored"
Ignored = Annotated[Any, Field(json_schema_extra={IGNORED_MARK: True})]


# Every model is built on first use (`defer_build`): results and event payloads serve only
# the schema, and a method's params are built when it is first called, so an idle gateway
# does not hold a validator for every declaration.


class Params(BaseModel):
    """Closed, strict params of a method."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class EmptyParams(Params):
    """Params of a method that takes none."""


class Result(BaseModel):
    """A closed result shape (used for the schema only)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class OpenResult(BaseModel):
    """A result shape that may carry more members than it names (schema only)."""

    model_config = ConfigDict(extra="allow", defer_build=True)


def agents_of(ctx: CallContext) -> AgentService:
    """Return the gateway's agent service.

    Raises:
        Unavailable: the gateway runs without a state store, so it keeps no sessions.
    """
    service = ctx.services.agents
    if service is None:
        raise Unavailable("chat needs the state store; start the gateway with a home directory")
    return service


def unknown_agent(agent_id: str) -> InvalidRequest:
    """Return the error for an agent id this gateway does not serve."""
    return InvalidRequest(
        f'unknown agent id "{agent_id}"; this gateway serves agent "{DEFAULT_AGENT_ID}"',
        details={"code": UNKNOWN_AGENT_ID, "agentId": agent_id},
    )


def check_agent_id(agent_id: str | None) -> None:
    """Refuse an agent id other than the default one.

    Raises:
        InvalidRequest: `UNKNOWN_AGENT_ID`.
    """
    if agent_id is not None and agent_id != DEFAULT_AGENT_ID:
        raise unknown_agent(agent_id)


def resolve_key(raw: str) -> str:
    """Return the canonical `agent:<agentId>:<key>` form of a session key.

    Raises:
        InvalidRequest: the key is malformed or names an unknown agent.
    """
    key = canonical_key(raw)
    parts = split_key(key)
    if parts is None:
        raise InvalidRequest(f'invalid session key "{raw}"; use agent:<agentId>:<name> or a name')
    check_agent_id(parts[0])
    return key


def avatar_of(name: str, avatar: str | None) -> str:
    """Return an agent's avatar, or its initial as OpenClaw shows an agent without one."""
    return avatar or name[:1].upper()


def session_defaults(ctx: CallContext) -> dict[str, Any]:
    """Return the default agent's model as OpenClaw's session `defaults` object."""
    entry = agent_catalog(ctx.services.info.agent)[0]
    return {"modelProvider": entry.provider, "model": entry.model}


def text_content(text: str) -> list[dict[str, Any]]:
    """Return message content holding one text part."""
    return [{"type": "text", "text": text}]
