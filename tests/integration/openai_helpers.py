"""Helpers for the OpenAI-compatible endpoint tests: a gateway serving them, clients."""

from __future__ import annotations

from typing import Any

import aiohttp
import openai

from clawgate.config import AgentSection, OpenAIHttpSection
from tests.conftest import GatewayFactory, RunningGateway


async def openai_gateway(factory: GatewayFactory, **overrides: Any) -> RunningGateway:
    """Start a gateway with `[http.openai] enabled` and an undelayed echo agent."""
    overrides.setdefault("agent", AgentSection(echo_delay_ms=0))
    overrides.setdefault("openai_http", OpenAIHttpSection(enabled=True))
    return await factory(**overrides)


def openai_client(gateway: RunningGateway, api_key: str | None = None) -> openai.AsyncOpenAI:
    """Return the official client pointed at the gateway; no retries hide a failure."""
    return openai.AsyncOpenAI(
        base_url=gateway.http_url + "/v1",
        api_key=api_key if api_key is not None else gateway.token,
        max_retries=0,
    )


async def openai_post(
    gateway: RunningGateway, path: str, data: bytes, token: str | None = None
) -> tuple[int, dict[str, Any], Any]:
    """POST `data` to `path` with `token` as the bearer; return status, headers and JSON."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as http,
        http.post(gateway.http_url + path, data=data, headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.json()
