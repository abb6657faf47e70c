"""The gateway over TLS: the right pin connects, a wrong pin aborts before any credential."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawgate.client import GatewayClient, GatewayConnectionError
from clawgate.tls import ensure_self_signed
from tests.conftest import GatewayFactory, RunningGateway


@pytest.fixture
async def secure(gateway_factory: GatewayFactory, tmp_path: Path) -> RunningGateway:
    return await gateway_factory(tls=ensure_self_signed(tmp_path / "tls"))


async def test_right_pin_connects(secure: RunningGateway) -> None:
    tls = secure.server.settings.tls
    assert tls is not None and secure.url.startswith("wss://")
    async with GatewayClient(secure.url, token=secure.token, tls_fingerprint=tls.fingerprint) as c:
        assert (await c.call("health"))["ok"] is True


async def test_wrong_pin_aborts_before_the_token_is_sent(secure: RunningGateway) -> None:
    wrong = "ab" * 32
    client = GatewayClient(secure.url, token=secure.token, tls_fingerprint=wrong)
    with pytest.raises(GatewayConnectionError, match="fingerprint"):
        await client.connect()
    metrics = secure.server.metrics.render().decode()
    # The TLS handshake failed on the client's side: no HTTP upgrade, no connect frame.
    assert "clawgate_handshakes_total{outcome=" not in metrics
    log = secure.home / "logs" / "gateway.log"
    assert not log.exists() or secure.token not in log.read_text()


async def test_pinned_handshake_is_counted_so_the_check_above_can_fail(
    secure: RunningGateway,
) -> None:
    tls = secure.server.settings.tls
    assert tls is not None
    async with GatewayClient(secure.url, token=secure.token, tls_fingerprint=tls.fingerprint):
        pass
    assert (
        'clawgate_handshakes_total{outcome="accepted"}' in secure.server.metrics.render().decode()
    )
