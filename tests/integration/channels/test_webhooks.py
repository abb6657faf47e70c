"""Platform webhooks on the gateway port: secret and named paths, GET and POST, replies."""

from __future__ import annotations

import aiohttp
import pytest

from clawgate.channels.base import ChannelError, WebhookReply, WebhookRequest
from clawgate.channels.manager import AccountRunner
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.telegram_api import FakeTelegram
from tests.integration.channels.harness import wait_for
from tests.integration.channels.test_telegram import telegram_gateway

pytestmark = pytest.mark.asyncio


async def _gateway(factory: GatewayFactory, telegram: FakeTelegram) -> RunningGateway:
    """A gateway serving platform webhooks: one Telegram account (long polling) runs."""
    gateway = await telegram_gateway(factory, telegram, dm_policy="open")
    await wait_for(lambda: _runner(gateway).state.value == "connected")
    return gateway


def _runner(gateway: RunningGateway) -> AccountRunner:
    """The Telegram account's runner, as its adapter sees it (an `AccountLink`)."""
    channels = gateway.server.channels
    assert channels is not None
    return channels.runtime.runners[("telegram", "default")]


async def test_a_named_webhook_answers_get_and_post_with_the_handlers_reply(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    gateway = await _gateway(gateway_factory, telegram)
    seen: list[WebhookRequest] = []

    async def handler(request: WebhookRequest) -> WebhookReply:
        seen.append(request)
        if request.method == "GET":
            return WebhookReply(text=request.query.get("hub.challenge", ""))
        return WebhookReply(202)

    path = _runner(gateway).add_webhook(handler, name="inbox")
    assert path == "telegram/inbox"
    url = f"{gateway.http_url}/channels/{path}"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params={"hub.challenge": "1158201444"}) as response:
            assert (response.status, await response.text()) == (200, "1158201444")
        async with http.post(url, data=b"{}", headers={"X-Signature": "s"}) as response:
            assert (response.status, await response.text()) == (202, "ok\n")
    assert [r.method for r in seen] == ["GET", "POST"]
    assert seen[1].headers["x-signature"] == "s" and seen[1].body == b"{}"


async def test_a_named_webhook_path_is_served_once_and_is_one_url_segment(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    gateway = await _gateway(gateway_factory, telegram)
    runner = _runner(gateway)

    async def handler(request: WebhookRequest) -> WebhookReply:
        return WebhookReply()

    runner.add_webhook(handler, name="inbox")
    with pytest.raises(ChannelError, match="already served"):
        runner.add_webhook(handler, name="inbox")
    with pytest.raises(ChannelError, match="one segment"):
        runner.add_webhook(handler, name="../admin")
    runner.remove_webhook("telegram/inbox")
    assert runner.add_webhook(handler, name="inbox") == "telegram/inbox"


async def test_a_secret_webhook_path_is_new_each_time_and_unknown_paths_are_not_found(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    gateway = await _gateway(gateway_factory, telegram)
    runner = _runner(gateway)

    async def handler(request: WebhookRequest) -> WebhookReply:
        return WebhookReply()

    first, second = runner.add_webhook(handler), runner.add_webhook(handler)
    assert first != second and first.startswith("telegram/")
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.http_url}/channels/telegram/guess") as response,
    ):
        assert response.status == 404
