"""The fixture of the client SDK tests: a scripted fake gateway on an ephemeral port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.client.helpers import FakeGateway


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    """Serve a scripted fake gateway for one test."""
    server = FakeGateway()
    await server.start()
    yield server
    await server.stop()
