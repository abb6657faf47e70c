"""`send`, media both ways, webhook mode, logout/login, and secrets staying secret."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from clawgate.client import GatewayCallError
from tests.conftest import GatewayFactory
from tests.fakes.telegram_api import BOT_TOKEN, FakeTelegram
from tests.integration.channels.harness import channel_status, operator, raw_post, wait_for
from tests.integration.channels.test_telegram import (
    ALICE,
    GROUP,
    paired,
    replies_to,
    telegram_gateway,
)
from tests.integration.conftest import PeerFactory


async def test_send_delivers_text_to_a_topic_as_a_reply(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram)
    peer = await operator(client_factory, gateway)
    result = await peer.client.call(
        "send",
        {
            "to": str(GROUP),
            "message": "scheduled note",
            "threadId": "77",
            "replyTo": "12",
            "idempotencyKey": "send-1",
        },
    )
    [sent] = telegram.messages_to(GROUP)
    assert (sent.text, sent.thread_id, sent.reply_to) == ("scheduled note", 77, 12)
    assert result == {
        "runId": "send-1",
        "messageId": str(sent.message_id),
        "channel": "telegram",
        "chatId": str(GROUP),
    }


async def test_send_with_the_same_idempotency_key_sends_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram)
    peer = await operator(client_factory, gateway)
    params = {"to": str(ALICE), "message": "once", "idempotencyKey": "same"}
    first = await peer.client.call("send", params)
    second = await peer.client.call("send", params)
    assert first == second and len(telegram.messages_to(ALICE)) == 1


async def test_send_with_a_session_key_appends_to_the_transcript(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram)
    peer = await operator(client_factory, gateway)
    key = f"agent:main:telegram:dm:{ALICE}"
    await peer.client.call(
        "send", {"to": str(ALICE), "message": "noted", "sessionKey": key, "idempotencyKey": "k"}
    )
    history = await peer.client.call("chat.history", {"sessionKey": key})
    assert history["messages"][-1]["content"][0]["text"] == "noted"


async def test_send_to_an_unconfigured_channel_is_refused(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram)
    peer = await operator(client_factory, gateway)
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call(
            "send", {"to": "x", "message": "m", "channel": "slack", "idempotencyKey": "k"}
        )
    assert caught.value.code == "INVALID_REQUEST"
    assert caught.value.details["code"] == "CHANNEL_NOT_CONFIGURED"


async def test_send_a_photo_from_the_media_folder(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram)
    peer = await operator(client_factory, gateway)
    media = gateway.home / "media"
    media.mkdir(mode=0o700)
    (media / "chart.png").write_bytes(b"\x89PNG fake image")
    await peer.client.call(
        "send",
        {"to": str(ALICE), "mediaUrl": str(media / "chart.png"), "idempotencyKey": "photo"},
    )
    [sent] = await telegram.wait_sent(lambda s: s.method == "sendPhoto")
    assert (sent.file_name, sent.file_bytes) == ("chart.png", len(b"\x89PNG fake image"))


async def test_send_refuses_a_local_file_outside_the_media_folder(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram)
    peer = await operator(client_factory, gateway)
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call(
            "send", {"to": str(ALICE), "mediaUrl": "/etc/passwd", "idempotencyKey": "x"}
        )
    assert caught.value.code == "INVALID_REQUEST"
    assert telegram.sent == []


async def test_an_inbound_photo_is_downloaded_and_reaches_the_agent(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await paired(gateway_factory, client_factory, telegram)
    telegram.user_says("look", user_id=ALICE, photo=b"JPEGDATA")
    [reply] = await wait_for(lambda: replies_to(telegram, ALICE, "[photo:"))
    path = reply.text.split("[photo: ")[1].split(" (")[0]
    assert path.startswith(str(gateway.home / "media" / "telegram" / "default"))
    assert Path(path).read_bytes() == b"JPEGDATA"  # noqa: ASYNC240


async def test_send_on_webchat_reaches_the_session_and_its_watchers(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    await peer.client.call(
        "send",
        {"to": "main", "message": "from send", "channel": "webchat", "idempotencyKey": "w"},
    )
    event = await peer.next_event("chat")
    assert event.payload["state"] == "final" and event.payload["sessionKey"] == "agent:main:main"
    status = await peer.client.call("channels.status")
    assert [e["channel"] for e in status["channels"]] == ["webchat"]


# -- webhook mode ----------------------------------------------------------------------------


async def test_webhook_mode_answers_a_dm(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(
        gateway_factory, telegram, mode="webhook", dm_policy="open", webhook_url="http://x"
    )
    peer = await operator(client_factory, gateway)
    hook = await wait_for(lambda: telegram.bots[BOT_TOKEN].webhook)
    # The stand-in cannot resolve the public name; point it at the gateway's own port.
    hook.url = hook.url.replace("http://x", gateway.http_url)
    telegram.user_says("over the webhook", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "over the webhook"))
    status = await channel_status(peer, "telegram")
    assert status["connected"] is True and status["mode"] == "webhook"


async def test_webhook_without_the_secret_token_is_refused(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(
        gateway_factory, telegram, mode="webhook", dm_policy="open", webhook_url="http://x"
    )
    hook = await wait_for(lambda: telegram.bots[BOT_TOKEN].webhook)
    url = hook.url.replace("http://x", gateway.http_url)
    update = {"update_id": 1, "message": {"message_id": 1, "date": 0, "chat": {"id": 1}}}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=update) as response:
            assert response.status == 401
        async with http.get(url) as response:
            assert response.status == 405
        async with http.post(url.rsplit("/", 1)[0] + "/guessed", json=update) as response:
            assert response.status == 404
    assert telegram.sent == []


async def test_webhook_with_an_undecodable_secret_token_is_refused_401(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(
        gateway_factory, telegram, mode="webhook", dm_policy="open", webhook_url="http://x"
    )
    hook = await wait_for(lambda: telegram.bots[BOT_TOKEN].webhook)
    url = hook.url.replace("http://x", gateway.http_url)
    for token in (b"\xff\xfe", "é".encode() + (hook.secret or "").encode()):
        headers = {"X-Telegram-Bot-Api-Secret-Token": token}
        assert await raw_post(url, b'{"update_id": 1}', headers) == 401
    assert telegram.sent == []


# -- logout and login ------------------------------------------------------------------------


async def test_logout_stops_the_account_until_login(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await paired(gateway_factory, client_factory, telegram)
    peer = await operator(client_factory, gateway)
    await peer.client.call("channels.logout", {"channel": "telegram"})
    status = await channel_status(peer, "telegram")
    assert (status["running"], status["state"]) == (False, "stopped")
    await gateway.restart()
    peer = await operator(client_factory, gateway)
    assert (await channel_status(peer, "telegram"))["running"] is False
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call("send", {"to": "1", "message": "m", "idempotencyKey": "k"})
    assert caught.value.code == "NOT_LINKED"
    await peer.client.call("channels.login", {"channel": "telegram"})
    telegram.user_says("back again", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "back again"))


# -- secrets -----------------------------------------------------------------------------------


async def test_the_bot_token_reaches_no_log_and_no_database(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await paired(gateway_factory, client_factory, telegram)
    telegram.script("sendMessage", "500")
    telegram.user_says("hello", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "hello"))
    await gateway.server.stop()
    secret = BOT_TOKEN.split(":")[1].encode()
    for path in gateway.home.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path
