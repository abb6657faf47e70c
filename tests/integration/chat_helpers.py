"""Helpers for agent and chat tests: gateways with a chosen agent, run event collection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from clawgate.config import AgentSection
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.conftest import Peer, PeerFactory

ADMIN = ["operator.admin"]


async def agent_gateway(factory: GatewayFactory, **agent: Any) -> RunningGateway:
    """Start a gateway whose `[agent]` section has `agent`'s values."""
    return await factory(agent=AgentSection(**agent))


async def admin_peer(clients: PeerFactory, gateway: RunningGateway) -> Peer:
    """Connect an operator holding every scope."""
    return await clients(gateway, scopes=ADMIN)


async def _collect(
    peer: Peer, name: str, run_id: str, last: Callable[[dict[str, Any]], bool], timeout: float
) -> list[dict[str, Any]]:
    """Collect the `name` events of a run up to and including the one `last` accepts."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async for event in peer.events:
            if event.event == name and event.payload["runId"] == run_id:
                events.append(event.payload)
                if last(event.payload):
                    return events
    raise AssertionError("connection closed before the run ended")


def _lifecycle_ended(payload: dict[str, Any]) -> bool:
    return payload["stream"] == "lifecycle" and payload["data"]["phase"] in ("end", "error")


async def run_events(peer: Peer, run_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Collect the `agent` events of a run until its lifecycle ends."""
    return await _collect(peer, "agent", run_id, _lifecycle_ended, timeout)


async def chat_events(peer: Peer, run_id: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Collect the `chat` events of a run until a terminal one."""
    return await _collect(peer, "chat", run_id, lambda p: p["state"] != "delta", timeout)
