"""Wrong channel webhook secrets count toward the address's lockout (spec §5.4)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from clawgate.channels.telegram import SECRET_HEADER
from tests.conftest import GatewayFactory
from tests.fakes.telegram_api import BOT_TOKEN, FakeTelegram
from tests.integration.channels.harness import wait_for
from tests.integration.channels.test_telegram import telegram_gateway
from tests.wire import connect_params, open_peer, request

UPDATE = {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 1}}}


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()


async def test_ten_wrong_webhook_secrets_lock_the_address_out_of_every_surface(
    gateway_factory: GatewayFactory, telegram: FakeTelegram, session: aiohttp.ClientSession
) -> None:
    gateway = await telegram_gateway(
        gateway_factory, telegram, mode="webhook", dm_policy="open", webhook_url="http://x"
    )
    hook = await wait_for(lambda: telegram.bots[BOT_TOKEN].webhook)
    url = hook.url.replace("http://x", gateway.http_url)
    for attempt in range(10):
        headers = {SECRET_HEADER: f"guess-{attempt}"}
        async with session.post(url, json=UPDATE, headers=headers) as response:
            assert response.status == 401
    right = {SECRET_HEADER: hook.secret or ""}
    async with session.post(url, json=UPDATE, headers=right) as response:
        assert response.status == 429
        assert int(response.headers["Retry-After"]) > 0
    peer = await open_peer(session, gateway.url)
    await peer.send(request("connect", connect_params(gateway.token), "c"))
    answer = await peer.response("c", timeout=30)
    assert answer["error"]["details"]["code"] == "AUTH_RATE_LIMITED"


async def test_guessed_webhook_paths_count_as_failed_guesses(
    gateway_factory: GatewayFactory, telegram: FakeTelegram, session: aiohttp.ClientSession
) -> None:
    gateway = await telegram_gateway(
        gateway_factory, telegram, mode="webhook", dm_policy="open", webhook_url="http://x"
    )
    hook = await wait_for(lambda: telegram.bots[BOT_TOKEN].webhook)
    url = hook.url.replace("http://x", gateway.http_url)
    for attempt in range(10):
        async with session.post(f"{gateway.http_url}/channels/telegram/g{attempt}") as response:
            assert response.status == 404
    right = {SECRET_HEADER: hook.secret or ""}
    async with session.post(url, json=UPDATE, headers=right) as response:
        assert response.status == 429
