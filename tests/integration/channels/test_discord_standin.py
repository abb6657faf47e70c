"""The Discord stand-in checked with discord.py, Discord's most used Python client.

discord.py cannot be pointed at another server through supported means (its REST root and
first gateway URL are class attributes), so these tests, and only they, set those two
attributes: what discord.py then does against the stand-in (IDENTIFY, READY, heartbeats,
RESUME, MESSAGE_CREATE, a reply, a 429) shows the stand-in speaks Discord's wire, which
is what `channels/discord.py` is tested against.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.fakes.discord_api import BOT_TOKEN, CHANNEL_ID, FakeDiscord

dpy = pytest.importorskip("discord")


class Bot:
    """A discord.py client logged in to the stand-in; its human messages land in `inbox`."""

    def __init__(self, fake: FakeDiscord) -> None:
        intents = dpy.Intents.default()
        intents.message_content = True
        self.client = dpy.Client(intents=intents)
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.client.event(self.on_message)
        self.fake = fake
        self.task: asyncio.Task[None] | None = None

    async def on_message(self, message: Any) -> None:
        if not message.author.bot:
            await self.inbox.put(message)

    async def start(self) -> None:
        await self.client.login(BOT_TOKEN)  # GET /users/@me
        self.task = asyncio.create_task(self.client.connect())
        async with asyncio.timeout(10):
            await self.client.wait_until_ready()

    async def next_message(self) -> Any:
        async with asyncio.timeout(10):
            return await self.inbox.get()

    async def stop(self) -> None:
        await self.client.close()
        if self.task is not None:
            await asyncio.wait({self.task}, timeout=5)


@pytest.fixture
async def bot(discord: FakeDiscord, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Bot]:
    from discord.gateway import DiscordWebSocket
    from discord.http import Route
    from yarl import URL

    monkeypatch.setattr(Route, "BASE", discord.api_base)
    monkeypatch.setattr(DiscordWebSocket, "DEFAULT_GATEWAY", URL(discord.gateway_url))
    running = Bot(discord)
    await running.start()
    yield running
    await running.stop()


async def test_discord_py_identifies_with_its_intents_and_sees_the_guild(
    bot: Bot, discord: FakeDiscord
) -> None:
    [identify] = discord.identifies
    assert identify["token"] == BOT_TOKEN and identify["intents"] & (1 << 15)
    assert bot.client.get_channel(int(CHANNEL_ID)) is not None


async def test_discord_py_reads_a_dm_and_its_reply_references_it(
    bot: Bot, discord: FakeDiscord
) -> None:
    sent = await discord.user_says("hello bot")
    message = await bot.next_message()
    assert (message.content, message.id, message.guild) == ("hello bot", int(sent["id"]), None)
    await message.reply("pong")
    [posted] = await discord.wait_posted()
    assert (posted.content, posted.reference, posted.channel_id) == (
        "pong",
        sent["id"],
        sent["channel_id"],
    )


async def test_discord_py_resumes_after_a_drop_and_gets_what_was_missed(
    bot: Bot, discord: FakeDiscord
) -> None:
    await discord.drop()
    sent = await discord.user_says("while you were away")
    message = await bot.next_message()
    [resume] = discord.resumes
    assert message.id == int(sent["id"])
    assert resume["session_id"] and isinstance(resume["seq"], int)


async def test_discord_py_waits_out_a_429_and_retries(bot: Bot, discord: FakeDiscord) -> None:
    discord.script("messages", "429")
    channel = bot.client.get_channel(int(CHANNEL_ID))
    await channel.send("after the limit")
    [posted] = await discord.wait_posted()
    assert posted.content == "after the limit"
    assert discord.calls.count(f"POST /channels/{CHANNEL_ID}/messages") == 2
