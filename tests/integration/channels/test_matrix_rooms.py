"""Matrix beyond the DM: invites, rooms with mention gating, threads, replies, typing, media."""

from __future__ import annotations

import asyncio
from pathlib import Path

from clawgate.config import AgentSection
from tests.conftest import GatewayFactory, RunningGateway
from tests.integration.channels.harness import operator, wait_for
from tests.integration.channels.matrix_human import WAIT_S, MatrixWorld
from tests.integration.channels.test_matrix import bot_said, matrix_gateway, paired
from tests.integration.conftest import PeerFactory

PNG = b"\x89PNG\r\n\x1a\n" + b"not really an image" * 10


async def in_a_room(
    factory: GatewayFactory, clients: PeerFactory, world: MatrixWorld
) -> tuple[RunningGateway, str]:
    """Start a gateway open to rooms the human invites it to; open one with a third person."""
    gateway = await matrix_gateway(
        factory, clients, world, group_policy="open", allow_from=[world.human.user_id]
    )
    carol = await world.another_human()
    room = await world.human.room([world.bot.user_id, carol.user_id])
    bot = world.bot.user_id
    await wait_for(lambda: world.human.membership(room, bot) == "join", timeout=WAIT_S)
    return gateway, room


# -- invites ----------------------------------------------------------------------------


async def test_a_dm_invite_from_an_allowed_sender_is_joined_and_answered(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    await matrix_gateway(
        gateway_factory,
        client_factory,
        matrix,
        dm_policy="allowlist",
        allow_from=[matrix.human.user_id],
    )
    room = await matrix.human.dm(matrix.bot.user_id)
    await matrix.human.say(room, "straight in")
    await matrix.human.wait_message(room, matrix.bot.user_id, "straight in")
    assert not bot_said(matrix.human, room, matrix, "Pairing code")


async def test_a_dm_invite_from_an_unknown_sender_is_declined_under_allowlist(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    await matrix_gateway(
        gateway_factory, client_factory, matrix, dm_policy="allowlist", allow_from=["@x:y"]
    )
    room = await matrix.human.dm(matrix.bot.user_id)
    await wait_for(
        lambda: matrix.human.membership(room, matrix.bot.user_id) == "leave", timeout=WAIT_S
    )


async def test_a_room_invite_from_a_stranger_is_declined(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    await matrix_gateway(gateway_factory, client_factory, matrix, group_policy="open")
    carol = await matrix.another_human()
    room = await matrix.human.room([matrix.bot.user_id, carol.user_id])
    await wait_for(
        lambda: matrix.human.membership(room, matrix.bot.user_id) == "leave", timeout=WAIT_S
    )


# -- rooms: mention gating, replies, threads --------------------------------------------


async def test_a_room_answers_only_when_the_bot_is_mentioned(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    _, room = await in_a_room(gateway_factory, client_factory, matrix)
    human, bot = matrix.human, matrix.bot
    await human.say(room, "just chatting among people")
    asked = await human.say(room, f"{bot.localpart}: by name please")
    [by_name] = await human.wait_message(room, bot.user_id, "by name please")
    await human.say(room, "by pill please", mention=bot.user_id)
    await human.wait_message(room, bot.user_id, "by pill please")
    assert by_name["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] == asked
    assert not bot_said(human, room, matrix, "just chatting")


async def test_a_reply_to_the_bot_counts_as_a_mention(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    _, room = await in_a_room(gateway_factory, client_factory, matrix)
    human, bot = matrix.human, matrix.bot
    await human.say(room, "first", mention=bot.user_id)
    [answer] = await human.wait_message(room, bot.user_id, "first")
    await human.say(room, "> quoted\n\nfollow-up", reply_to=answer["event_id"])
    [second] = await human.wait_message(room, bot.user_id, "follow-up")
    assert "quoted" not in second["content"]["body"]  # the reply fallback is not text


async def test_a_thread_message_is_answered_in_its_thread(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    gateway, room = await in_a_room(gateway_factory, client_factory, matrix)
    human, bot = matrix.human, matrix.bot
    root = await human.say(room, "a topic of its own")
    asked = await human.say(room, "inside the thread", thread=root, mention=bot.user_id)
    [reply] = await human.wait_message(room, bot.user_id, "inside the thread")
    relates = reply["content"]["m.relates_to"]
    assert (relates["rel_type"], relates["event_id"]) == ("m.thread", root)
    assert relates["m.in_reply_to"]["event_id"] == asked
    peer = await operator(client_factory, gateway)
    sessions = await peer.client.call("sessions.list")
    keys = [s["key"] for s in sessions["sessions"]]
    assert any(k.endswith(f":thread:{root.replace(':', '_')}") for k in keys), keys


# -- typing and media -------------------------------------------------------------------


async def test_the_bot_shows_typing_while_the_agent_works(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    _, room = await paired(
        gateway_factory, client_factory, matrix, agent=AgentSection(echo_delay_ms=2000)
    )
    await matrix.human.say(room, "take your time")
    await wait_for(
        lambda: any(r == room and matrix.bot.user_id in u for r, u in matrix.human.typing),
        timeout=WAIT_S,
    )
    await matrix.human.wait_message(room, matrix.bot.user_id, "take your time")


async def test_an_inbound_image_is_downloaded_and_reaches_the_agent(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    gateway, room = await paired(gateway_factory, client_factory, matrix)
    url = await matrix.human.upload(PNG, "cat.png", "image/png")
    content = {
        "msgtype": "m.image",
        "body": "cat.png",
        "url": url,
        "info": {"mimetype": "image/png", "size": len(PNG)},
    }
    await matrix.human.send(room, content)
    [reply] = await matrix.human.wait_message(room, matrix.bot.user_id, "[photo: ")
    path = Path(reply["content"]["body"].split("[photo: ")[1].split(" (")[0])
    assert path.is_relative_to(gateway.home / "media" / "matrix" / "default")
    assert await asyncio.to_thread(path.read_bytes) == PNG


async def test_send_uploads_a_file_as_an_image(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    gateway, room = await paired(gateway_factory, client_factory, matrix)
    peer = await operator(client_factory, gateway)
    media = gateway.home / "media"
    media.mkdir(mode=0o700, exist_ok=True)
    (media / "chart.png").write_bytes(PNG)
    await peer.client.call(
        "send", {"to": room, "mediaUrl": str(media / "chart.png"), "idempotencyKey": "img"}
    )
    [image] = await wait_for(
        lambda: [
            e
            for e in matrix.human.messages(room, matrix.bot.user_id)
            if e["content"].get("msgtype") == "m.image"
        ],
        timeout=WAIT_S,
    )
    assert image["content"]["info"]["mimetype"] == "image/png"
    assert await matrix.human.download(image["content"]["url"]) == PNG


async def test_send_reaches_a_thread_as_a_reply_and_a_user_by_their_dm(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    gateway, room = await paired(gateway_factory, client_factory, matrix)
    peer = await operator(client_factory, gateway)
    human = matrix.human
    root = await human.say(room, "root")
    leaf = await human.say(room, "leaf", thread=root)
    result = await peer.client.call(
        "send",
        {
            "to": room,
            "message": "scheduled note",
            "threadId": root,
            "replyTo": leaf,
            "idempotencyKey": "note-1",
        },
    )
    [note] = await human.wait_message(room, matrix.bot.user_id, "scheduled note")
    relates = note["content"]["m.relates_to"]
    assert (relates["rel_type"], relates["event_id"]) == ("m.thread", root)
    assert relates["m.in_reply_to"]["event_id"] == leaf
    assert result["messageId"] == note["event_id"] and result["channel"] == "matrix"
    await peer.client.call(
        "send", {"to": human.user_id, "message": "by user id", "idempotencyKey": "note-2"}
    )
    await human.wait_message(room, matrix.bot.user_id, "by user id")
