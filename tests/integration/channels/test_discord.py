"""Discord end to end: a real gateway, our gateway + REST client, the Discord stand-in."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from clawgate.service.doctor import DoctorProbes
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.discord_api import (
    BOT_TOKEN,
    BOT_USER_ID,
    CHANNEL_ID,
    THREAD_ID,
    FakeDiscord,
    Posted,
)
from tests.integration.channels.harness import (
    approve_pending,
    channel_gateway,
    channel_status,
    operator,
    wait_for,
)
from tests.integration.conftest import PeerFactory

ALICE = "1500000000000000001"
MENTION = f"<@{BOT_USER_ID}>"


def discord_table(fake: FakeDiscord, **overrides: Any) -> dict[str, Any]:
    """Return a `[channels.discord]` table pointing at the stand-in."""
    table = {"token": BOT_TOKEN, "api_base": fake.api_base, "debounce_ms": 0, **overrides}
    return {"discord": table}


async def discord_gateway(
    factory: GatewayFactory, fake: FakeDiscord, **overrides: Any
) -> RunningGateway:
    """Start a gateway with the Discord channel on the stand-in, once it is identified."""
    gateway = await channel_gateway(factory, discord_table(fake, **overrides))
    await fake.wait_ready(1)
    return gateway


async def paired(
    factory: GatewayFactory, clients: PeerFactory, fake: FakeDiscord, **overrides: Any
) -> RunningGateway:
    """Start a gateway and pair Alice through the real pairing flow."""
    gateway = await discord_gateway(factory, fake, **overrides)
    peer = await operator(clients, gateway)
    await fake.user_says("hi", user=ALICE)
    await approve_pending(peer, "discord")
    return gateway


def replies(fake: FakeDiscord, channel: str, containing: str) -> list[Posted]:
    """Return the messages the bot posted to `channel` that contain `containing`."""
    return [
        p
        for p in fake.posted
        if p.kind == "message" and p.channel_id == channel and containing in p.content
    ]


async def test_unknown_dm_sender_gets_a_pairing_code_and_no_agent_reply(
    gateway_factory: GatewayFactory, discord: FakeDiscord
) -> None:
    await discord_gateway(gateway_factory, discord)
    await discord.user_says("please run rm -rf /", user=ALICE)
    [sent] = await discord.wait_posted()
    assert "Pairing code:" in sent.content and "rm -rf" not in sent.content
    assert sent.channel_id == discord.dm_channel(ALICE)


async def test_a_paired_dm_is_answered_by_the_agent_without_a_reply_reference(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    await paired(gateway_factory, client_factory, discord)
    await discord.user_says("what is the weather", user=ALICE)
    dm = discord.dm_channel(ALICE)
    [reply] = await wait_for(lambda: replies(discord, dm, "what is the weather"))
    assert reply.reference is None


async def test_a_mention_in_a_guild_channel_is_answered_as_a_reply(
    gateway_factory: GatewayFactory, discord: FakeDiscord
) -> None:
    await discord_gateway(gateway_factory, discord, groups=[CHANNEL_ID])
    sent = await discord.user_says(
        f"{MENTION} are you there", channel=CHANNEL_ID, mentions=[BOT_USER_ID]
    )
    [reply] = await wait_for(lambda: replies(discord, CHANNEL_ID, "are you there"))
    assert reply.reference == sent["id"] and MENTION not in reply.content


async def test_a_guild_message_without_a_mention_is_ignored(
    gateway_factory: GatewayFactory, discord: FakeDiscord
) -> None:
    await discord_gateway(gateway_factory, discord, groups=[CHANNEL_ID])
    await discord.user_says("chatting among ourselves", channel=CHANNEL_ID)
    await discord.user_says(f"{MENTION} marker", channel=CHANNEL_ID, mentions=[BOT_USER_ID])
    await wait_for(lambda: replies(discord, CHANNEL_ID, "marker"))
    assert replies(discord, CHANNEL_ID, "among ourselves") == []


async def test_a_message_in_a_thread_is_answered_in_it_as_the_thread_s_session(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    gateway = await discord_gateway(gateway_factory, discord, groups=[CHANNEL_ID])
    peer = await operator(client_factory, gateway)
    await discord.user_says(f"{MENTION} in the thread", channel=THREAD_ID)
    [reply] = await wait_for(lambda: replies(discord, THREAD_ID, "in the thread"))
    assert replies(discord, CHANNEL_ID, "in the thread") == [] and reply.reference
    sessions = await peer.client.call("sessions.list")
    keys = [s["key"] for s in sessions["sessions"]]
    assert f"agent:main:discord:group:{CHANNEL_ID}:thread:{THREAD_ID}" in keys


async def test_a_guild_channel_not_allowed_is_ignored_even_when_mentioned(
    gateway_factory: GatewayFactory, discord: FakeDiscord
) -> None:
    await discord_gateway(gateway_factory, discord, groups=["1399999999999999999"])
    await discord.user_says(f"{MENTION} let me in", channel=CHANNEL_ID, mentions=[BOT_USER_ID])
    await discord.user_says("marker", user=ALICE)  # a DM: answered with a pairing code
    await discord.wait_posted()
    assert replies(discord, CHANNEL_ID, "let me in") == []


async def test_a_long_reply_arrives_in_order_in_2000_character_chunks(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    await paired(gateway_factory, client_factory, discord)
    words = " ".join(f"w{n:04d}" + "x" * 95 for n in range(60))
    await discord.user_says(words + " END", user=ALICE)
    dm = discord.dm_channel(ALICE)
    await wait_for(lambda: replies(discord, dm, "END"))
    chunks = [p for p in discord.posted if p.channel_id == dm and p.kind == "message"][1:]
    assert all(len(c.content) <= 2000 for c in chunks) and len(chunks) >= 4
    numbers = [w for w in " ".join(c.content for c in chunks).split() if w.startswith("w")]
    assert numbers == sorted(numbers) and len(numbers) == 60


async def test_a_429_on_post_is_retried_after_retry_after(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    await paired(gateway_factory, client_factory, discord)
    discord.script("messages", "429")
    await discord.user_says("rate limited", user=ALICE)
    dm = discord.dm_channel(ALICE)
    await wait_for(lambda: replies(discord, dm, "rate limited"))
    posts = [c for c in discord.calls if c == f"POST /channels/{dm}/messages"]
    assert len(posts) == 3  # the pairing code, the 429, the retry


async def test_an_exhausted_rate_limit_bucket_is_waited_out_instead_of_hitting_429(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    await paired(gateway_factory, client_factory, discord)
    discord.bucket_limit, discord.bucket_window_s = 2, 0.5
    words = " ".join(f"w{n:04d}" + "x" * 95 for n in range(60))
    await discord.user_says(words + " END", user=ALICE)
    dm = discord.dm_channel(ALICE)
    await wait_for(lambda: replies(discord, dm, "END"))
    assert discord.limited == 0


async def test_channels_status_shows_the_connected_discord_account(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    gateway = await discord_gateway(gateway_factory, discord)
    peer = await operator(client_factory, gateway)

    async def connected() -> dict[str, Any] | None:
        status = await channel_status(peer, "discord")
        return status if status["connected"] else None

    status = await wait_for(connected)
    assert status["running"] is True and status["lastError"] is None


async def test_metrics_count_discord_traffic_and_readyz_lists_the_account(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    gateway = await paired(gateway_factory, client_factory, discord)
    await discord.user_says("count me", user=ALICE)
    await wait_for(lambda: replies(discord, discord.dm_channel(ALICE), "count me"))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.http_url}/metrics") as response:
            metrics = await response.text()
        async with http.get(f"{gateway.http_url}/readyz") as response:
            ready = await response.json()
    assert 'clawgate_channel_inbound_total{account="default",channel="discord"} 2.0' in metrics
    assert 'clawgate_channel_connected{account="default",channel="discord"} 1.0' in metrics
    assert ready["channels"]["discord/default"] == "connected"


async def test_a_refused_token_fails_the_account_once_with_a_clear_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, discord: FakeDiscord
) -> None:
    table = discord_table(discord, token="MTIz.revoked.token-of-yesterday")
    gateway = await channel_gateway(gateway_factory, table)
    peer = await operator(client_factory, gateway)

    async def failed() -> dict[str, Any] | None:
        status = await channel_status(peer, "discord")
        return status if status["state"] == "failed" else None

    status = await wait_for(failed)
    assert "401 Unauthorized" in status["lastError"] and "revoked" not in str(status)
    calls = len(discord.calls)
    await asyncio.sleep(0.5)  # several restart delays of the fast test backoff
    assert len(discord.calls) == calls == 1


async def test_doctor_checks_the_bot_token_with_users_me(discord: FakeDiscord) -> None:
    probes = DoctorProbes()
    options = {"api_base": discord.api_base}
    ok = await asyncio.to_thread(probes.channel_problem, "discord", options, BOT_TOKEN)
    refused = await asyncio.to_thread(probes.channel_problem, "discord", options, "MTIz.no.pe")
    assert ok is None
    assert refused == "Discord refused the bot token (401 Unauthorized)"
