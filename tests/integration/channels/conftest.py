"""Fixtures for channel tests: platform stand-ins, started and stopped around each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.telegram_api import FakeTelegram
from tests.integration.channels.ircd import Human, Ngircd

#: The server password of the `password_ircd` server.
IRCD_PASSWORD = "letmein-7f3a"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    """A Bot API stand-in on a loopback port, with one bot (`BOT_TOKEN`)."""
    fake = FakeTelegram()
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
