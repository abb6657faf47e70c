"""A webhook's run delivers its reply to a messaging channel when asked to."""

from __future__ import annotations

import aiohttp

from clawgate.config import HooksSection
from tests.conftest import GatewayFactory
from tests.fakes.telegram_api import FakeTelegram
from tests.integration.channels.harness import channel_gateway
from tests.integration.channels.test_telegram import ALICE, telegram_table

HOOK_TOKEN = "hook-token-for-delivery-tests"


async def test_an_agent_hook_with_deliver_sends_the_reply_to_a_telegram_chat(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    hooks = HooksSection(enabled=True, token=HOOK_TOKEN)
    gateway = await channel_gateway(gateway_factory, telegram_table(telegram), hooks=hooks)
    body = {"message": "deploy finished", "deliver": True, "channel": "telegram", "to": str(ALICE)}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            gateway.http_url + "/hooks/agent",
            json=body,
            headers={"Authorization": f"Bearer {HOOK_TOKEN}"},
        ) as response,
    ):
        assert response.status == 202
    [sent] = await telegram.wait_sent(lambda s: s.chat_id == str(ALICE))
    assert "deploy finished" in sent.text
