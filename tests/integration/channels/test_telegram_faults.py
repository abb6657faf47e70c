"""Telegram when things go wrong: redelivery, restarts, dropped and wedged polls, bad input."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import GatewayFactory
from tests.fakes.telegram_api import BOT_TOKEN, FakeTelegram
from tests.integration.channels.harness import channel_status, failure_notes, operator, wait_for
from tests.integration.channels.test_telegram import (
    ALICE,
    paired,
    replies_to,
    telegram_gateway,
)
from tests.integration.conftest import PeerFactory


async def test_a_redelivered_update_is_answered_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    await paired(gateway_factory, client_factory, telegram)
    update = telegram.user_says("only once please", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "only once please"))
    telegram.redeliver(update)
    telegram.user_says("marker", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "marker"))
    assert len(replies_to(telegram, ALICE, "only once please")) == 1


async def test_updates_held_during_a_restart_are_answered_once_each(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await paired(gateway_factory, client_factory, telegram)
    telegram.user_says("before", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "before"))
    await gateway.server.stop()
    for n in range(3):
        telegram.user_says(f"while down {n}", user_id=ALICE)
    await gateway.restart()
    for n in range(3):
        await wait_for(lambda n=n: replies_to(telegram, ALICE, f"while down {n}"))
    telegram.user_says("marker", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "marker"))
    assert len(replies_to(telegram, ALICE, "before")) == 1
    assert all(len(replies_to(telegram, ALICE, f"while down {n}")) == 1 for n in range(3))


async def test_the_stand_in_restarting_mid_stream_loses_nothing(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await paired(gateway_factory, client_factory, telegram)
    peer = await operator(client_factory, gateway)
    await telegram.stop()
    await telegram.start(telegram.port)
    telegram.user_says("after the outage", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "after the outage"))
    status = await channel_status(peer, "telegram")
    assert status["state"] == "connected"


async def test_a_dropped_poll_connection_recovers(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    await paired(gateway_factory, client_factory, telegram)
    telegram.script("getUpdates", "drop", "drop")
    telegram.user_says("through the drops", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "through the drops"))


@pytest.mark.slow
async def test_a_wedged_long_poll_is_rebuilt(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await paired(gateway_factory, client_factory, telegram)
    peer = await operator(client_factory, gateway)
    await wait_for(lambda: telegram.calls.count("getUpdates") > 1)
    telegram.script("getUpdates", "hang")
    telegram.user_says("after the hang", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "after the hang"), timeout=30)
    status = await channel_status(peer, "telegram")
    assert status["connected"] is True


async def test_a_bad_token_fails_the_account_once_without_retrying(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram, token="123:not-a-known-token")
    peer = await operator(client_factory, gateway)
    status = await wait_for(lambda: _failed(peer), timeout=10)
    assert "401" in status["lastError"] and "not-a-known-token" not in status["lastError"]
    calls = len(telegram.calls)
    await asyncio.sleep(0.5)  # several restart delays of the fast test backoff
    assert len(telegram.calls) == calls
    health = await peer.client.call("health", {"probe": True})
    assert health["channels"]["telegram"]["running"] is False


async def _failed(peer: object) -> dict[str, object] | None:
    status = await channel_status(peer, "telegram")  # type: ignore[arg-type]
    return status if status["state"] == "failed" else None


async def test_a_malformed_token_fails_with_a_clear_message(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram, token="no colon here")
    peer = await operator(client_factory, gateway)
    status = await wait_for(lambda: _failed(peer))
    assert "malformed" in str(status["lastError"])


async def test_odd_updates_do_not_stop_the_adapter(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    await paired(gateway_factory, client_factory, telegram)
    telegram.user_says("", user_id=ALICE)  # empty text
    telegram.push({"update_id": 1_000_000, "poll_answer": {"poll_id": "x", "option_ids": []}})
    telegram.push({"update_id": 1_000_001, "some_future_kind": {"a": 1}})
    telegram.script("getUpdates", "malformed", "500")
    telegram.user_says("still here", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "still here"))


async def test_a_100_kb_reply_arrives_in_order_in_4096_character_chunks(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    await paired(gateway_factory, client_factory, telegram)
    # 1000 words of 100 characters: the echo agent streams one event per word.
    words = " ".join(f"w{n:04d}" + "x" * 95 for n in range(1000))
    telegram.user_says(words + " END", user_id=ALICE)
    await wait_for(lambda: any("END" in s.text for s in telegram.messages_to(ALICE)))
    chunks = telegram.messages_to(ALICE)[1:]
    assert all(len(c.text) <= 4096 for c in chunks) and len(chunks) >= 25
    joined = " ".join(c.text for c in chunks).split()
    numbers = [w for w in joined if w.startswith("w")]
    assert numbers == sorted(numbers) and len(numbers) == 1000


async def test_a_429_on_send_is_retried_after_retry_after(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    await paired(gateway_factory, client_factory, telegram)
    telegram.script("sendMessage", "429")
    telegram.user_says("rate limited", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "rate limited"))


async def test_an_undeliverable_reply_is_recorded_failed_on_the_session(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await paired(gateway_factory, client_factory, telegram)
    peer = await operator(client_factory, gateway)
    telegram.script("sendMessage", "500", "500", "500")
    telegram.user_says("lost in transit", user_id=ALICE)
    key = f"agent:main:telegram:dm:{ALICE}"
    [text] = await wait_for(lambda: failure_notes(peer, key))
    assert "3 attempt" in text
    status = await channel_status(peer, "telegram")
    assert "500" in str(status["lastError"]) or "Internal" in str(status["lastError"])


async def test_metrics_count_channel_traffic_and_readyz_lists_the_account(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await paired(gateway_factory, client_factory, telegram)
    telegram.user_says("count me", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "count me"))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.http_url}/metrics") as response:
            metrics = await response.text()
        async with http.get(f"{gateway.http_url}/readyz") as response:
            ready = await response.json()
    assert 'clawgate_channel_inbound_total{account="default",channel="telegram"} 2.0' in metrics
    assert 'clawgate_channel_connected{account="default",channel="telegram"} 1.0' in metrics
    assert ready["channels"]["telegram/default"] == "connected"
    assert ready["channels"]["webchat/default"] == "connected"


async def test_another_poller_gets_the_account_restarted_not_failed(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await paired(gateway_factory, client_factory, telegram)
    peer = await operator(client_factory, gateway)
    url = f"{telegram.api_base}/bot{BOT_TOKEN}/getUpdates"
    async with aiohttp.ClientSession() as http:
        for _ in range(2):  # each foreign poll ends the gateway's current one with 409
            await wait_for(lambda: telegram.bots[BOT_TOKEN].poller > 0)
            async with http.post(url, json={"timeout": 0}) as response:
                assert response.status == 200
            await asyncio.sleep(0.1)
    status = await wait_for(lambda: _restarted(peer))
    assert status["state"] != "failed"
    telegram.user_says("after the conflict", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "after the conflict"))


async def _restarted(peer: object) -> dict[str, object] | None:
    status = await channel_status(peer, "telegram")  # type: ignore[arg-type]
    return status if int(status["reconnects"]) >= 1 else None  # type: ignore[call-overload]
