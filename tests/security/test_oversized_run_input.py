"""Agent run input over `agent.max_input_chars` is refused (issue 17 point 4)."""

from __future__ import annotations

import aiohttp
import pytest

from clawgate.protocol.limits import AGENT_MAX_INPUT_CHARS
from tests.conftest import RunningGateway
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
