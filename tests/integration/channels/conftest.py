"""Fixtures for channel tests: platform stand-ins, started and stopped around each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.telegram_api import FakeTelegram


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    """A Bot API stand-in on a loopback port, with one bot (`BOT_TOKEN`)."""
    fake = FakeTelegram()
    await fake.start()
    yield fake
    await fake.stop()
