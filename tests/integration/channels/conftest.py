"""Fixtures for channel tests: platform stand-ins, started and stopped around each test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.bluebubbles import FakeBlueBubbles
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.signal_cli import FakeSignalCli
from tests.fakes.slack_api import FakeSlack
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.whatsapp_cloud import FakeWhatsApp
from tests.integration.channels.ircd import Human, Ngircd
from tests.integration.channels.matrix_human import Human as MatrixHuman
from tests.integration.channels.matrix_human import MatrixWorld
from tests.integration.channels.synapse import Synapse

#: The server password of the `password_ircd` server.
IRCD_PASSWORD = "letmein-7f3a"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    """A Bot API stand-in on a loopback port, with one bot (`BOT_TOKEN`)."""
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """A Slack Web API + Socket Mode stand-in on a loopback port (`BOT_TOKEN`, `APP_TOKEN`)."""
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    """A Discord REST + gateway stand-in on a loopback port, with one bot (`BOT_TOKEN`)."""
    fake = FakeDiscord()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def whatsapp() -> AsyncIterator[FakeWhatsApp]:
    """A WhatsApp Cloud API stand-in (Graph API + Meta's webhook sender) on a loopback port."""
    fake = FakeWhatsApp()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def bluebubbles() -> AsyncIterator[FakeBlueBubbles]:
    """A BlueBubbles server stand-in on a loopback port (`PASSWORD`, Private API on)."""
    fake = FakeBlueBubbles()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def signal_cli() -> AsyncIterator[FakeSignalCli]:
    """A signal-cli HTTP daemon stand-in on a loopback port, holding the account `ACCOUNT`."""
    fake = FakeSignalCli()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="session")
def ircd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ngircd]:
    """One real ngircd for the session's IRC tests (each test uses its own nicks)."""
    server = Ngircd(tmp_path_factory.mktemp("ngircd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_ircd(tmp_path: Path) -> Iterator[Ngircd]:
    """An ngircd for one test that restarts or freezes it."""
    server = Ngircd(tmp_path / "ngircd")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def password_ircd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ngircd]:
    """An ngircd that wants the server password `PASSWORD_IRCD`."""
    server = Ngircd(tmp_path_factory.mktemp("ngircd-pw"), password=IRCD_PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def humans() -> AsyncIterator[Callable[..., Awaitable[Human]]]:
    """Connect human IRC clients (`await humans(port, "alice")`); all quit at the end."""
    made: list[Human] = []

    async def connect(port: int, nick: str, password: str | None = None) -> Human:
        human = await Human(nick).connect(port, password)
        made.append(human)
        return human

    yield connect
    for human in made:
        await human.close()


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synapse]:
    """A real Synapse homeserver (SQLite, loopback), shared by the session's Matrix tests.

    It takes seconds to start, so only tests that ask for it (through `matrix`) start it,
    once; every test registers its own users, which keeps them apart.
    """
    server = Synapse(Path(tmp_path_factory.mktemp("synapse")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def matrix(synapse: Synapse) -> AsyncIterator[MatrixWorld]:
    """Fresh Matrix users on the shared homeserver: the bot, and a human who is syncing."""
    bot = await asyncio.to_thread(synapse.register, "bot")
    account = await asyncio.to_thread(synapse.register, "alice")
    human = MatrixHuman(synapse.url, account)
    await human.start()
    world = MatrixWorld(synapse, bot, human)
    yield world
    await world.close()
