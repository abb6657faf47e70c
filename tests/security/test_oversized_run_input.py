"""Agent run input over `agent.max_input_chars` is refused at every door (issue 17 point 4)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from clawgate.config import OpenAIHttpSection
from clawgate.protocol.limits import AGENT_MAX_INPUT_CHARS
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.test_hooks_http import hooks_gateway, post
from tests.wire import open_peer, request

TOO_LONG = "x" * (AGENT_MAX_INPUT_CHARS + 1)


@pytest.mark.parametrize("method", ["chat.send", "agent"])
async def test_oversized_run_input_is_refused_naming_the_limit(
    gateway: RunningGateway, session: aiohttp.ClientSession, method: str
) -> None:
    peer = await open_peer(session, gateway.url)
    await peer.authenticate(gateway.token)
    params = {"message": TOO_LONG, "idempotencyKey": f"big-{method}"}
    if method == "chat.send":
        params["sessionKey"] = "main"
    await peer.send(request(method, params, "big"))
    answer = await peer.response("big", timeout=60)
    assert answer["error"]["code"] == "INVALID_REQUEST"
    assert "agent.max_input_chars" in answer["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses"])
async def test_an_oversized_openai_prompt_gets_400_naming_the_limit(
    gateway_factory: GatewayFactory, session: aiohttp.ClientSession, path: str
) -> None:
    gateway = await gateway_factory(openai_http=OpenAIHttpSection(enabled=True))
    body: dict[str, Any] = {"model": "clawgate:main"}
    if path == "/v1/responses":
        body["input"] = TOO_LONG
    else:
        body["messages"] = [{"role": "user", "content": TOO_LONG}]
    headers = {"Authorization": f"Bearer {gateway.token}"}
    async with session.post(gateway.http_url + path, json=body, headers=headers) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert "agent.max_input_chars" in error["message"]


# The webhook body may be 256 KiB: without the check, twice the limit started a run.
@pytest.mark.parametrize(
    ("path", "body"),
    [("/hooks/agent", {"message": TOO_LONG}), ("/hooks/mail", {"from": "a", "subject": TOO_LONG})],
)
async def test_an_oversized_webhook_message_gets_400_naming_the_limit(
    gateway_factory: GatewayFactory, path: str, body: dict[str, Any]
) -> None:
    gateway = await hooks_gateway(gateway_factory)
    status, _, answer = await post(gateway, path, body)
    assert status == 400 and answer["error"]["code"] == "INVALID_REQUEST"
    assert "agent.max_input_chars" in answer["error"]["message"]
