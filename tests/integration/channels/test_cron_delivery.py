"""Cron jobs deliver their replies on a messaging channel through the channel layer."""

from __future__ import annotations

from typing import Any

import pytest

from clawgate.client import GatewayCallError
from tests.conftest import GatewayFactory
from tests.fakes.telegram_api import FakeTelegram
from tests.integration.channels.harness import operator
from tests.integration.channels.test_telegram import ALICE, telegram_gateway
from tests.integration.conftest import Peer, PeerFactory


async def _finished(peer: Peer) -> dict[str, Any]:
    while True:
        event = await peer.next_event("cron", 20.0)
        if event.payload["action"] == "finished":
            return event.payload


async def test_a_cron_agent_turn_delivers_its_reply_to_a_telegram_chat(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram)
    peer = await operator(client_factory, gateway)
    payload = {
        "kind": "agentTurn",
        "message": "good morning digest",
        "deliver": True,
        "channel": "telegram",
        "to": str(ALICE),
    }
    job = await peer.client.call(
        "cron.add", {"schedule": {"kind": "every", "everyMs": 3_600_000}, "payload": payload}
    )
    await peer.client.call("cron.run", {"id": job["id"], "mode": "force"})
    end = await _finished(peer)
    assert end["status"] == "ok"
    [sent] = await telegram.wait_sent(lambda s: s.chat_id == str(ALICE))
    assert sent.text == "good morning digest"


async def test_delivery_to_a_channel_without_a_peer_is_refused_at_add(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram)
    peer = await operator(client_factory, gateway)
    payload = {"kind": "agentTurn", "message": "x", "deliver": True, "channel": "telegram"}
    with pytest.raises(GatewayCallError) as refused:
        await peer.client.call(
            "cron.add", {"schedule": {"kind": "every", "everyMs": 3_600_000}, "payload": payload}
        )
    assert refused.value.code == "INVALID_REQUEST" and "needs `to`" in refused.value.message
