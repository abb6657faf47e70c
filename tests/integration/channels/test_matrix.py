"""Matrix end to end: a real gateway, matrix-nio on both sides, a real Synapse homeserver."""

from __future__ import annotations

from typing import Any

from clawgate.channels.outbound import OutboxPolicy
from clawgate.config import AgentSection
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.channels.harness import (
    FAST_OUTBOX,
    approve_pending,
    channel_gateway,
    channel_status,
    operator,
    wait_for,
)
from tests.integration.channels.matrix_human import WAIT_S, Human, MatrixWorld
from tests.integration.conftest import PeerFactory


def matrix_table(world: MatrixWorld, **overrides: Any) -> dict[str, Any]:
    """Return a `[channels.matrix]` table for the world's bot."""
    table = {
        "homeserver": world.synapse.url,
        "user_id": world.bot.user_id,
        "access_token": world.bot.access_token,
        "sync_timeout_s": 5,
        "debounce_ms": 0,
        **overrides,
    }
    return {"matrix": table}


async def matrix_gateway(
    factory: GatewayFactory,
    clients: PeerFactory,
    world: MatrixWorld,
    *,
    agent: AgentSection | None = None,
    outbox: OutboxPolicy = FAST_OUTBOX,
    **overrides: Any,
) -> RunningGateway:
    """Start a gateway with the Matrix channel and wait until its first sync is done."""
    table = matrix_table(world, **overrides)
    gateway = await channel_gateway(factory, table, agent=agent, outbox=outbox)
    peer = await operator(clients, gateway)
    await wait_for(lambda: _connected(peer), timeout=WAIT_S, interval=0.1)
    return gateway


async def _connected(peer: Any) -> bool:
    return bool((await channel_status(peer, "matrix"))["connected"])


async def paired(
    factory: GatewayFactory, clients: PeerFactory, world: MatrixWorld, **overrides: Any
) -> tuple[RunningGateway, str]:
    """Start a gateway, open a DM and pair the human through the real flow; return the room."""
    gateway = await matrix_gateway(factory, clients, world, **overrides)
    peer = await operator(clients, gateway)
    room = await world.human.dm(world.bot.user_id)
    await world.human.say(room, "hi")
    await world.human.wait_message(room, world.bot.user_id, "Pairing code:")
    await approve_pending(peer, "matrix")
    return gateway, room


def bot_said(human: Human, room: str, world: MatrixWorld, containing: str) -> list[dict[str, Any]]:
    """Return what the bot said in `room` containing `containing`."""
    return human.messages(room, world.bot.user_id, containing)


# -- DMs and pairing --------------------------------------------------------------------


async def test_a_dm_gets_a_pairing_code_then_after_approval_the_agent_reply(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    gateway = await matrix_gateway(gateway_factory, client_factory, matrix)
    peer = await operator(client_factory, gateway)
    human = matrix.human
    room = await human.dm(matrix.bot.user_id)
    await human.say(room, "please run rm -rf /")
    [code_message] = await human.wait_message(room, matrix.bot.user_id, "Pairing code:")
    assert "rm -rf" not in code_message["content"]["body"]
    entry = await approve_pending(peer, "matrix")
    assert (entry["sender"], entry["accountId"]) == (human.user_id, "default")
    assert entry["code"] in code_message["content"]["body"]
    await human.say(room, "what is the weather")
    [reply] = await human.wait_message(room, matrix.bot.user_id, "what is the weather")
    assert "m.relates_to" not in reply["content"]  # a DM answer is not a reply-quote
    assert not bot_said(human, room, matrix, "rm -rf")


async def test_the_sync_token_is_persisted_and_a_restart_answers_only_new_messages(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    gateway, room = await paired(gateway_factory, client_factory, matrix)
    await matrix.human.say(room, "before restart")
    await matrix.human.wait_message(room, matrix.bot.user_id, "before restart")
    await gateway.server.stop()
    await matrix.human.say(room, "while down")
    await gateway.restart()
    await matrix.human.wait_message(room, matrix.bot.user_id, "while down")
    await matrix.human.say(room, "marker")
    await matrix.human.wait_message(room, matrix.bot.user_id, "marker")
    assert len(bot_said(matrix.human, room, matrix, "before restart")) == 1
    assert len(bot_said(matrix.human, room, matrix, "while down")) == 1
    assert len(bot_said(matrix.human, room, matrix, "Pairing code:")) == 1
