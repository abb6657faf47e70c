"""WebChat is one adapter of the channel layer: listed, supervised, delivered to like Telegram."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from clawgate.automation.delivery import DeliveryTarget
from clawgate.channels.base import ChannelAdapter
from clawgate.channels.webchat import WebChatAdapter
from clawgate.client import GatewayCallError
from clawgate.store.channels_repo import OutboundRow, load_outbound
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.telegram_api import FakeTelegram
from tests.integration.channels.harness import channel_status, operator, wait_for
from tests.integration.channels.test_telegram import ALICE, telegram_gateway
from tests.integration.conftest import Peer, PeerFactory


async def _outbound(gateway: RunningGateway) -> list[OutboundRow]:
    store = gateway.server.store
    assert store is not None
    return await store.read(load_outbound)


async def _history(peer: Peer, key: str) -> list[dict[str, Any]]:
    return list((await peer.client.call("chat.history", {"sessionKey": key}))["messages"])


async def test_webchat_is_an_adapter_account_run_by_the_channel_manager(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    entry = await wait_for(lambda: channel_status(peer, "webchat"))
    assert (entry["state"], entry["connected"], entry["running"]) == ("connected", True, True)
    channels = gateway.server.channels
    assert channels is not None
    runner = channels.runtime.runners[("webchat", "default")]
    adapter: ChannelAdapter | None = runner.adapter
    assert isinstance(adapter, WebChatAdapter) and runner.builtin


async def test_send_on_webchat_goes_through_the_adapter_and_is_recorded(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    result = await peer.client.call(
        "send",
        {"to": "main", "message": "from send", "channel": "webchat", "idempotencyKey": "w1"},
    )
    assert result["channel"] == "webchat" and result["chatId"] == "agent:main:main"
    event = await peer.next_event("chat")
    assert event.payload["runId"] == "w1" and event.payload["sessionKey"] == "agent:main:main"
    [row] = await _outbound(gateway)
    assert (row.channel, row.account, row.chat_id, row.state) == (
        "webchat",
        "default",
        "agent:main:main",
        "sent",
    )
    assert row.message_ids == f'["{result["messageId"]}"]'
    [message] = await _history(peer, "main")
    assert message["content"][0]["text"] == "from send" and message["label"] == "send"
    entry = await channel_status(peer, "webchat")
    assert entry["lastOutboundAt"] is not None


async def test_send_on_webchat_to_an_unknown_session_fails_and_is_recorded(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call(
            "send",
            {"to": "nowhere", "message": "x", "channel": "webchat", "idempotencyKey": "w2"},
        )
    assert caught.value.code == "UNAVAILABLE"
    assert caught.value.details["code"] == "DELIVERY_FAILED"
    assert "no WebChat session agent:main:nowhere" in caught.value.message
    [row] = await _outbound(gateway)
    assert (row.channel, row.state) == ("webchat", "failed")
    sessions = await peer.client.call("sessions.list")
    assert "agent:main:nowhere" not in [s["key"] for s in sessions["sessions"]]


async def test_send_media_on_webchat_is_refused_by_its_capabilities(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call(
            "send",
            {
                "to": "main",
                "mediaUrl": "https://example.invalid/a.png",
                "channel": "webchat",
                "idempotencyKey": "w3",
            },
        )
    assert caught.value.code == "INVALID_REQUEST" and "text only" in caught.value.message
    assert await _outbound(gateway) == []


async def test_an_automated_reply_to_webchat_goes_through_the_adapter_with_its_label(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    await gateway.server.delivery.deliver(
        DeliveryTarget("webchat", "agent:main:main"), "digest", label="cron: inbox"
    )
    [row] = await _outbound(gateway)
    assert (row.channel, row.chat_id, row.state) == ("webchat", "agent:main:main", "sent")
    [message] = await _history(peer, "main")
    assert message["content"][0]["text"] == "digest" and message["label"] == "cron: inbox"


async def test_webchat_cannot_be_logged_out(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call("channels.logout", {"channel": "webchat"})
    assert caught.value.code == "INVALID_REQUEST" and "always on" in caught.value.message
    assert (await channel_status(peer, "webchat"))["state"] == "connected"


async def test_send_without_a_channel_ignores_webchat_and_needs_a_configured_one(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call("send", {"to": "42", "message": "m", "idempotencyKey": "w4"})
    assert caught.value.details["code"] == "CHANNEL_NOT_CONFIGURED"
    assert "no messaging channel is configured" in caught.value.message


async def test_send_without_a_channel_picks_the_one_configured_platform_not_webchat(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram)
    peer = await operator(client_factory, gateway)
    params = {"to": str(ALICE), "message": "m", "idempotencyKey": "w5"}
    result = await peer.client.call("send", params)
    assert result["channel"] == "telegram"
    status = await peer.client.call("channels.status")
    assert [e["channel"] for e in status["channels"]] == ["webchat", "telegram"]


async def test_chat_send_counts_as_webchat_inbound_in_status_and_metrics(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    params = {"sessionKey": "main", "message": "hi", "idempotencyKey": "c1"}
    await peer.client.call("chat.send", params)
    await peer.client.call("chat.send", params)  # a retry is the same message, counted once
    entry = await channel_status(peer, "webchat")
    assert entry["lastInboundAt"] is not None
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.http_url}/metrics") as got:
        metrics = await got.text()
    assert 'clawgate_channel_inbound_total{account="default",channel="webchat"} 1.0' in metrics


async def test_without_platforms_pairing_names_the_channel_as_not_configured(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    assert (await peer.client.call("channels.pairing.list"))["pending"] == []
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call(
            "channels.pairing.approve", {"channel": "telegram", "code": "ABCD2345"}
        )
    assert caught.value.details["code"] == "CHANNEL_NOT_CONFIGURED"
