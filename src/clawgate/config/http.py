"""The HTTP surfaces' tables: `[http]` (`[http.openai]`), `[hooks]` and `[canvas]`."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Final

from pydantic import Field, model_validator

from ..protocol.limits import (
    HOOKS_MAX_BODY_BYTES,
    HOOKS_RATE_PER_MINUTE,
    MIB,
    OPENAI_MAX_BODY_BYTES,
)
from .section import ENV_NAME, Section

__all__ = [
    "RESERVED_HOOK_NAMES",
    "CanvasSection",
    "HookMappingSection",
    "HooksSection",
    "HttpSection",
    "OpenAIHttpSection",
]


class OpenAIHttpSection(Section):
    """`[http.openai]`: the OpenAI-compatible `/v1` endpoints on the gateway port."""

    enabled: bool = Field(default=False, description="serve the OpenAI-compatible /v1 endpoints")
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * MIB)] = Field(
        default=OPENAI_MAX_BODY_BYTES, description="larger request bodies are answered 413"
    )


class HttpSection(Section):
    """`[http]`: HTTP surfaces served beside the WebSocket API."""

    openai: OpenAIHttpSection = Field(default_factory=OpenAIHttpSection)


_HOOK_NAME: Final = r"^[a-z0-9][a-z0-9_-]{0,63}$"
#: Routes of their own under the hooks path: no mapping may take these names.
RESERVED_HOOK_NAMES: Final = frozenset({"wake", "agent"})


class HookMappingSection(Section):
    """`[hooks.mappings.<name>]`: `POST <path>/<name>` turns a JSON body into an agent run."""

    template: Annotated[str, Field(min_length=1, max_length=16 * 1024)] = Field(
        description="`{{dotted.path}}` placeholders are replaced with the body's values"
    )
    secret_env: Annotated[str, Field(pattern=ENV_NAME)] | None = Field(
        default=None,
        description=(
            "the HMAC secret is read from this environment variable, never from "
            "the file. With it, the hook is authenticated by its signature "
            "(GitHub style) instead of the token"
        ),
    )
    signature_header: Annotated[str, Field(min_length=1)] = Field(
        default="X-Hub-Signature-256", description="the header carrying the HMAC signature"
    )
    allow_from: list[str] = Field(
        default_factory=list,
        description="source addresses or networks allowed to call this hook; empty allows any",
    )
    idempotency_header: str | None = Field(
        default=None, description="a header whose value dedupes retries (e.g. X-GitHub-Delivery)"
    )
    session_key: Annotated[str, Field(min_length=1, max_length=512)] | None = Field(
        default=None, description="the session runs land in; default `hook:<name>`"
    )

    @model_validator(mode="after")
    def _networks(self) -> HookMappingSection:
        for entry in self.allow_from:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"allow_from: {entry!r} is not an address or network") from None
        return self


class HooksSection(Section):
    """`[hooks]`: authenticated webhooks that wake the agent or start runs."""

    enabled: bool = Field(default=False, description="serve the webhooks")
    token: str | None = Field(
        default=None,
        repr=False,
        description="separate from the gateway token: a hook caller gets no operator access",
    )
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9/_-]*[A-Za-z0-9_-]$")] = Field(
        default="/hooks", description="the URL path the hooks are under"
    )
    max_body_bytes: Annotated[int, Field(ge=1024, le=16 * MIB)] = Field(
        default=HOOKS_MAX_BODY_BYTES, description="larger bodies are answered 413"
    )
    rate_limit_per_minute: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=HOOKS_RATE_PER_MINUTE,
        description="requests per minute per credential; more are answered 429 with Retry-After",
    )
    mappings: dict[Annotated[str, Field(pattern=_HOOK_NAME)], HookMappingSection] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _usable(self) -> HooksSection:
        taken = sorted(RESERVED_HOOK_NAMES & set(self.mappings))
        if taken:
            raise ValueError(f"mapping name {taken[0]!r} is reserved for the built-in route")
        if self.enabled and not self.token:
            raise ValueError('enabled hooks need a token: set [hooks] token = "<a long secret>"')
        return self


class CanvasSection(Section):
    """`[canvas]`: the canvas host, serving agent-written pages to nodes and browsers."""

    enabled: bool = Field(
        default=False,
        description=(
            "off by default: it is one more port and a file watcher, and only nodes use it"
        ),
    )
    port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=18793, description="the canvas host's HTTP port"
    )
    bind: str = Field(default="loopback", description="loopback | lan | an IP address")
    root: str | None = Field(
        default=None,
        description=(
            "the folder served; relative paths are under the home. Default: <home>/canvas"
        ),
    )
    live_reload: bool = Field(
        default=True, description="reload open pages when a file under root changes"
    )
