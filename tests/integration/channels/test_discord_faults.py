"""Discord when things go wrong: redelivery, drops, resumes, refused sessions and odd frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.conftest import GatewayFactory
from tests.fakes.discord_api import BOT_TOKEN, BOT_USER_ID, CHANNEL_ID, FakeDiscord
from tests.integration.channels.harness import (
    channel_gateway,
    channel_status,
    failure_notes,
    operator,
    wait_for,
)
from tests.integration.channels.test_discord import (
    ALICE,
    MENTION,
    discord_gateway,
    discord_table,
    paired,
    replies,
)
from tests.integration.conftest import PeerFactory


async def test_a_redelivered_message_is_answered_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    await paired(gateway_factory, client_factory, discord)
    sent = await discord.user_says("only once please", user=ALICE)
    dm = discord.dm_channel(ALICE)
    await wait_for(lambda: replies(discord, dm, "only once please"))
    await discord.redeliver(sent)
    await discord.user_says("marker", user=ALICE)
    await wait_for(lambda: replies(discord, dm, "marker"))
    assert len(replies(discord, dm, "only once please")) == 1


async def test_messages_arriving_together_in_one_dm_reach_the_session_in_their_order(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    gateway = await paired(gateway_factory, client_factory, discord)
    peer = await operator(client_factory, gateway)
    for n in range(20):  # delivered side by side by the adapter, persisted in arrival order
        await discord.user_says(f"number {n:02d}", user=ALICE)
    key = f"agent:main:discord:dm:{ALICE}"

    async def numbers() -> list[str]:
        history = await peer.client.call("chat.history", {"sessionKey": key})
        texts = [m["content"][0]["text"] for m in history["messages"] if m["role"] == "user"]
        found = [t.split("number ")[1][:2] for t in texts if "number " in t]
        return found if len(found) == 20 else []

    assert await wait_for(numbers, timeout=20) == [f"{n:02d}" for n in range(20)]


async def test_a_dropped_socket_is_resumed_and_what_came_meanwhile_is_answered_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    await paired(gateway_factory, client_factory, discord)
    await discord.drop()
    await discord.user_says("while you were away", user=ALICE)
    await discord.wait_ready(2, timeout=20)
    dm = discord.dm_channel(ALICE)
    await wait_for(lambda: replies(discord, dm, "while you were away"), timeout=20)
    [resume] = discord.resumes
    assert len(discord.identifies) == 1
    assert resume["session_id"] and resume["token"] == BOT_TOKEN and resume["seq"] >= 3
    assert len(replies(discord, dm, "while you were away")) == 1


async def test_discord_answering_500_for_a_while_is_retried_until_it_connects(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    discord.script("me", "500", "500")
    discord.script("gateway", "500")
    gateway = await channel_gateway(gateway_factory, discord_table(discord, dm_policy="open"))
    await discord.wait_ready(1, timeout=20)
    await discord.user_says("once it is back", user=ALICE)
    await wait_for(lambda: replies(discord, discord.dm_channel(ALICE), "once it is back"))
    status = await channel_status(await operator(client_factory, gateway), "discord")
    assert status["state"] != "failed" and int(status["reconnects"]) >= 3


async def test_an_invalid_session_is_followed_by_a_fresh_identify(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    await paired(gateway_factory, client_factory, discord)
    await discord.invalidate()
    await discord.wait_ready(2, timeout=20)
    await discord.user_says("after the new session", user=ALICE)
    dm = discord.dm_channel(ALICE)
    await wait_for(lambda: replies(discord, dm, "after the new session"))
    assert len(discord.identifies) == 2 and discord.resumes == []


async def test_a_token_revoked_while_connected_fails_the_account_on_close_4004_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    gateway = await discord_gateway(gateway_factory, discord)
    peer = await operator(client_factory, gateway)
    discord.tokens.clear()  # the token was reset in the Developer Portal
    await discord.drop()

    async def failed() -> dict[str, Any] | None:
        status = await channel_status(peer, "discord")
        return status if status["state"] == "failed" else None

    status = await wait_for(failed, timeout=20)
    assert "4004" in status["lastError"] and BOT_TOKEN not in str(status)
    connections = discord.connections
    await asyncio.sleep(0.5)  # several restart delays of the fast test backoff
    assert discord.connections == connections == 2


async def test_a_heartbeat_left_unanswered_reconnects_and_resumes(
    gateway_factory: GatewayFactory, discord: FakeDiscord
) -> None:
    discord.heartbeat_interval_ms = 100
    discord.ack_heartbeats = False
    await discord_gateway(gateway_factory, discord)
    await discord.wait_ready(2, timeout=20)
    assert len(discord.identifies) == 1 and discord.resumes[0]["session_id"]


async def test_a_missing_message_content_intent_fails_the_account_saying_so(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    discord.allowed_intents = 0
    gateway = await channel_gateway(gateway_factory, discord_table(discord))
    peer = await operator(client_factory, gateway)

    async def failed() -> dict[str, Any] | None:
        status = await channel_status(peer, "discord")
        return status if status["state"] == "failed" else None

    status = await wait_for(failed)
    assert "Message Content Intent" in status["lastError"]
    assert discord.connections == 1


async def test_a_reply_discord_keeps_refusing_is_recorded_failed_on_the_session(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    gateway = await paired(gateway_factory, client_factory, discord)
    peer = await operator(client_factory, gateway)
    discord.script("messages", "500", "500", "500")
    await discord.user_says("lost in transit", user=ALICE)
    key = f"agent:main:discord:dm:{ALICE}"
    [text] = await wait_for(lambda: failure_notes(peer, key))
    assert "3 attempt" in text
    status = await channel_status(peer, "discord")
    assert "500" in str(status["lastError"])


async def test_odd_unknown_and_oversized_payloads_are_skipped_without_a_crash(
    gateway_factory: GatewayFactory, discord: FakeDiscord
) -> None:
    await discord_gateway(gateway_factory, discord, groups=[CHANNEL_ID])
    await discord.send_raw("this is not json")
    await discord.send_raw(json.dumps([1, 2, 3]))
    await discord.send_raw(json.dumps({"op": 42, "d": {"future": True}}))
    await discord.send_dispatch("SOME_FUTURE_EVENT", {"payload": [1, 2, 3]})
    await discord.send_dispatch("MESSAGE_CREATE", {"id": 5, "content": None})
    await discord.send_dispatch("MESSAGE_CREATE", None)
    bot_says = discord.message(f"{MENTION} from a bot", channel=CHANNEL_ID, bot=True)
    await discord.send_dispatch("MESSAGE_CREATE", bot_says)
    system = {**discord.message(f"{MENTION} pinned", channel=CHANNEL_ID), "type": 6}
    await discord.send_dispatch("MESSAGE_CREATE", system)
    big = f"{MENTION} " + "y" * 50_000 + " marker"
    await discord.user_says(big, channel=CHANNEL_ID, mentions=[BOT_USER_ID])
    await wait_for(lambda: replies(discord, CHANNEL_ID, "marker"))
    texts = [p.content for p in discord.posted if p.channel_id == CHANNEL_ID]
    assert all(len(t) <= 2000 for t in texts)
    assert replies(discord, CHANNEL_ID, "from a bot") == replies(discord, CHANNEL_ID, "pinned")
    assert len(discord.identifies) == 1 and discord.resumes == []


async def test_dispatches_with_fields_of_the_wrong_shape_do_not_end_the_session(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    gateway = await discord_gateway(gateway_factory, discord, groups=[CHANNEL_ID])
    said = discord.message(f"{MENTION} odd", channel=CHANNEL_ID)
    await discord.send_dispatch("MESSAGE_CREATE", {**said, "type": []})
    await discord.send_dispatch("MESSAGE_CREATE", {**said, "mentions": [{"id": {}}]})
    await discord.send_dispatch("MESSAGE_CREATE", {**said, "mentions": 7})
    # A snowflake is a 64-bit number; its time past that would not fit the inbound record.
    await discord.send_dispatch("MESSAGE_CREATE", {**said, "id": "9" * 30})
    await discord.send_dispatch("GUILD_CREATE", {"id": "1", "channels": 5, "threads": None})
    await discord.send_dispatch("THREAD_CREATE", {"id": "2", "type": [11], "parent_id": "3"})
    await discord.send_dispatch("THREAD_LIST_SYNC", {"threads": {"id": "4"}})
    await discord.user_says(f"{MENTION} marker", channel=CHANNEL_ID, mentions=[BOT_USER_ID])
    await wait_for(lambda: replies(discord, CHANNEL_ID, "marker"))
    await discord.user_says(f"{MENTION} second", channel=CHANNEL_ID, mentions=[BOT_USER_ID])
    await wait_for(lambda: replies(discord, CHANNEL_ID, "second"))
    # Handled in place: the account never restarted, so nothing was resumed.
    status = await channel_status(await operator(client_factory, gateway), "discord")
    assert (status["reconnects"], status["lastError"]) == (0, None)
    assert len(discord.identifies) == 1 and discord.resumes == []


async def test_the_token_reaches_no_log_and_no_file_of_the_home(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    gateway = await paired(gateway_factory, client_factory, discord)
    discord.script("messages", "500")
    await discord.user_says("hello", user=ALICE)
    await wait_for(lambda: replies(discord, discord.dm_channel(ALICE), "hello"))
    await gateway.server.stop()
    for path in gateway.home.rglob("*"):
        if path.is_file():
            assert BOT_TOKEN.encode() not in path.read_bytes(), path
