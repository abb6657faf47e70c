"""Telegram end to end: a real gateway, python-telegram-bot, the Bot API stand-in."""

from __future__ import annotations

from typing import Any

from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.telegram_api import BOT_TOKEN, BOT_USERNAME, FakeTelegram
from tests.integration.channels.harness import (
    approve_pending,
    channel_gateway,
    channel_status,
    operator,
    wait_for,
)
from tests.integration.conftest import PeerFactory

ALICE = 4242
GROUP = -1001234


def telegram_table(fake: FakeTelegram, **overrides: Any) -> dict[str, Any]:
    """Return a `[channels.telegram]` table pointing at the stand-in."""
    table = {
        "token": BOT_TOKEN,
        "api_base": fake.api_base,
        "poll_timeout_s": 1,
        "debounce_ms": 0,
        **overrides,
    }
    return {"telegram": table}


async def telegram_gateway(
    factory: GatewayFactory, fake: FakeTelegram, **overrides: Any
) -> RunningGateway:
    """Start a gateway with the Telegram channel on the stand-in."""
    return await channel_gateway(factory, telegram_table(fake, **overrides))


async def paired(
    factory: GatewayFactory, clients: PeerFactory, fake: FakeTelegram, **overrides: Any
) -> RunningGateway:
    """Start a gateway and pair Alice through the real pairing flow."""
    gateway = await telegram_gateway(factory, fake, **overrides)
    peer = await operator(clients, gateway)
    fake.user_says("hi", user_id=ALICE)
    await approve_pending(peer, "telegram")
    return gateway


def replies_to(fake: FakeTelegram, chat: int, containing: str) -> list[Any]:
    """Return the messages sent to `chat` that contain `containing`."""
    return [s for s in fake.messages_to(chat) if containing in s.text]


# -- closed by default and pairing ------------------------------------------------------


async def test_unknown_sender_gets_a_pairing_code_and_no_agent_reply(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    await telegram_gateway(gateway_factory, telegram)
    telegram.user_says("please run rm -rf /", user_id=ALICE)
    [sent] = await telegram.wait_sent()
    assert "Pairing code:" in sent.text
    assert "rm -rf" not in sent.text
    code = sent.text.split("Pairing code: ")[1].split()[0]
    assert (len(code) == 8 and code.isupper()) or code.isdigit()


async def test_pairing_code_is_listed_with_channel_account_sender_and_expiry(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram)
    peer = await operator(client_factory, gateway)
    telegram.user_says("hello", user_id=ALICE)
    [sent] = await telegram.wait_sent()
    listing = await peer.client.call("channels.pairing.list")
    [entry] = listing["pending"]
    assert entry["channel"] == "telegram" and entry["accountId"] == "default"
    assert entry["sender"] == str(ALICE) and entry["code"] in sent.text
    assert entry["expiresAt"] - entry["createdAt"] == 3_600_000


async def test_approved_sender_gets_the_agent_reply(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    await paired(gateway_factory, client_factory, telegram)
    telegram.user_says("what is the weather", user_id=ALICE)
    [reply] = await wait_for(lambda: replies_to(telegram, ALICE, "what is the weather"))
    assert reply.reply_to is None  # a DM answer is not a reply-quote


async def test_approval_survives_a_restart(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await paired(gateway_factory, client_factory, telegram)
    await gateway.restart()
    telegram.user_says("after restart", user_id=ALICE)
    await wait_for(lambda: replies_to(telegram, ALICE, "after restart"))


async def test_a_stranger_gets_one_code_however_often_they_write(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    await telegram_gateway(gateway_factory, telegram)
    for text in ("one", "two", "three"):
        telegram.user_says(text, user_id=ALICE)
    await telegram.wait_sent()
    telegram.user_says("marker", user_id=999, first_name="Bob")
    await wait_for(lambda: telegram.messages_to(999))
    assert len(telegram.messages_to(ALICE)) == 1


async def test_allowlist_policy_refuses_unknown_senders_silently(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    await telegram_gateway(gateway_factory, telegram, dm_policy="allowlist", allow_from=["1"])
    telegram.user_says("hello", user_id=ALICE)
    telegram.user_says("from the allowed one", user_id=1)
    await wait_for(lambda: replies_to(telegram, 1, "from the allowed one"))
    assert telegram.messages_to(ALICE) == []


# -- groups --------------------------------------------------------------------------------


async def test_group_message_without_mention_is_not_answered(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    await telegram_gateway(gateway_factory, telegram, groups=[str(GROUP)])
    telegram.user_says("chatting among ourselves", chat_id=GROUP, chat_type="supergroup")
    text = f"@{BOT_USERNAME} are you there"
    telegram.user_says(
        text,
        chat_id=GROUP,
        chat_type="supergroup",
        entities=[{"type": "mention", "offset": 0, "length": len(BOT_USERNAME) + 1}],
    )
    await wait_for(lambda: replies_to(telegram, GROUP, "are you there"))
    assert replies_to(telegram, GROUP, "among ourselves") == []


async def test_group_reply_quotes_the_message_it_answers(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    await telegram_gateway(gateway_factory, telegram, groups=[str(GROUP)])
    update = telegram.user_says(
        "answer me", chat_id=GROUP, chat_type="supergroup", reply_to_bot=True
    )
    [reply] = await wait_for(lambda: replies_to(telegram, GROUP, "answer me"))
    assert reply.reply_to == update["message"]["message_id"]


async def test_group_outside_the_allowlist_is_refused(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    await telegram_gateway(gateway_factory, telegram, groups=["-100999"])
    telegram.user_says("hello", chat_id=GROUP, chat_type="supergroup", reply_to_bot=True)
    telegram.user_says("marker", user_id=ALICE)  # a stranger's DM: answered with a code
    await telegram.wait_sent()
    assert telegram.messages_to(GROUP) == []


async def test_forum_topic_is_answered_in_its_topic_and_has_its_own_session(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(
        gateway_factory, telegram, groups=[str(GROUP)], require_mention=False
    )
    peer = await operator(client_factory, gateway)
    telegram.user_says("in a topic", chat_id=GROUP, chat_type="supergroup", thread_id=77)
    [reply] = await wait_for(lambda: replies_to(telegram, GROUP, "in a topic"))
    assert reply.thread_id == 77
    sessions = await peer.client.call("sessions.list")
    keys = [s["key"] for s in sessions["sessions"]]
    assert f"agent:main:telegram:group:{GROUP}:topic:77" in keys


# -- routing and operators -------------------------------------------------------------------


async def test_channel_turns_reach_ws_operators_as_chat_events(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await paired(gateway_factory, client_factory, telegram)
    peer = await operator(client_factory, gateway)
    telegram.user_says("watch this", user_id=ALICE)
    while True:
        event = await peer.next_event("chat", timeout=10)
        if event.payload["state"] == "final":
            break
    assert event.payload["sessionKey"] == f"agent:main:telegram:dm:{ALICE}"
    history = await peer.client.call("chat.history", {"sessionKey": event.payload["sessionKey"]})
    user_text = history["messages"][-2]["content"][0]["text"]
    assert "EXTERNAL_UNTRUSTED_CONTENT" in user_text and "watch this" in user_text


async def test_channels_status_shows_webchat_and_the_connected_account(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram)
    peer = await operator(client_factory, gateway)
    status = await wait_for(lambda: _connected(peer), timeout=10)
    assert status["running"] is True and status["lastError"] is None
    listing = await peer.client.call("channels.status")
    assert listing["channels"][0]["channel"] == "webchat"


async def _connected(peer: Any) -> dict[str, Any] | None:
    status = await channel_status(peer, "telegram")
    return status if status["connected"] else None


async def test_rapid_messages_from_one_sender_become_one_turn(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    await paired(gateway_factory, client_factory, telegram, debounce_ms=300)
    telegram.user_says("first part", user_id=ALICE)
    telegram.user_says("second part", user_id=ALICE)
    [reply] = await wait_for(lambda: replies_to(telegram, ALICE, "second part"))
    assert "first part\nsecond part" in reply.text
    assert len(replies_to(telegram, ALICE, "first part")) == 1
