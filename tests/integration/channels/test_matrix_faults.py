"""Matrix when things go wrong: redelivery, a homeserver restart, bad credentials, odd input."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from clawgate.channels.matrix import TIMELINE_LIMIT
from clawgate.channels.outbound import OutboxPolicy
from clawgate.service.doctor import DoctorProbes
from tests.conftest import GatewayFactory
from tests.integration.channels.harness import channel_gateway, channel_status, operator, wait_for
from tests.integration.channels.matrix_human import WAIT_S, MatrixWorld
from tests.integration.channels.test_matrix import bot_said, matrix_table, paired
from tests.integration.conftest import Peer, PeerFactory


def _cursor(home: Path, value: str | None = None) -> str:
    """Read (or, with the gateway stopped, overwrite) the persisted sync token."""
    with sqlite3.connect(home / "state.db") as conn:
        if value is not None:
            conn.execute(
                "UPDATE channel_state SET value = ? WHERE channel = 'matrix' AND key = 'cursor'",
                (value,),
            )
        row = conn.execute(
            "SELECT value FROM channel_state WHERE channel = 'matrix' AND key = 'cursor'"
        ).fetchone()
    return str(row[0])


async def test_a_sync_redelivered_from_an_old_token_is_answered_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    gateway, room = await paired(gateway_factory, client_factory, matrix)
    human, bot = matrix.human, matrix.bot
    await human.say(room, "warm up")
    await human.wait_message(room, bot.user_id, "warm up")
    old = await asyncio.to_thread(_cursor, gateway.home)
    await human.say(room, "only once please")
    await human.wait_message(room, bot.user_id, "only once please")
    await gateway.server.stop()
    assert await asyncio.to_thread(_cursor, gateway.home) != old
    await asyncio.to_thread(_cursor, gateway.home, old)  # the adapter restarts from the past
    await gateway.restart()
    await human.say(room, "marker")
    await human.wait_message(room, bot.user_id, "marker")
    assert len(bot_said(human, room, matrix, "only once please")) == 1


async def test_a_homeserver_restart_mid_stream_loses_nothing(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    # Replies retried for ~30 s, as a real outbox would: Synapse restarts slowly on a busy box.
    patient = OutboxPolicy(max_attempts=10, initial_s=0.5, max_s=5.0)
    gateway, room = await paired(gateway_factory, client_factory, matrix, outbox=patient)
    peer = await operator(client_factory, gateway)
    human, bot = matrix.human, matrix.bot
    await human.say(room, "just before the restart")
    await asyncio.to_thread(matrix.synapse.restart)
    await human.say(room, "after the restart")
    await human.wait_message(room, bot.user_id, "after the restart")
    await human.wait_message(room, bot.user_id, "just before the restart")
    await wait_for(
        lambda: _state_is(peer, "connected"),
        timeout=WAIT_S,
        interval=0.1,
    )
    assert len(bot_said(human, room, matrix, "just before the restart")) == 1
    assert len(bot_said(human, room, matrix, "after the restart")) == 1


async def _state_is(peer: Peer, state: str) -> bool:
    return bool((await channel_status(peer, "matrix"))["state"] == state)


async def test_a_refused_access_token_fails_the_account_once_with_a_clear_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    table = matrix_table(matrix, access_token="syt_not_a_real_token")
    gateway = await channel_gateway(gateway_factory, table)
    peer = await operator(client_factory, gateway)
    await wait_for(lambda: _state_is(peer, "failed"), timeout=WAIT_S, interval=0.1)
    status = await channel_status(peer, "matrix")
    assert "refused the matrix/default access token" in status["lastError"]
    assert "syt_not_a_real_token" not in status["lastError"]
    assert (status["running"], status["connected"], status["reconnects"]) == (False, False, 0)


async def test_a_wrong_password_fails_the_account_with_a_clear_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    table = matrix_table(matrix, access_token=None, password="not the password")
    gateway = await channel_gateway(gateway_factory, table)
    peer = await operator(client_factory, gateway)
    await wait_for(lambda: _state_is(peer, "failed"), timeout=WAIT_S, interval=0.1)
    status = await channel_status(peer, "matrix")
    assert "refused the matrix/default password login" in status["lastError"]
    assert status["reconnects"] == 0


async def test_a_password_login_works_and_logout_ends_its_session(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    gateway, room = await paired(
        gateway_factory, client_factory, matrix, access_token=None, password=matrix.bot.password
    )
    await matrix.human.say(room, "via password")
    await matrix.human.wait_message(room, matrix.bot.user_id, "via password")
    peer = await operator(client_factory, gateway)
    await peer.client.call("channels.logout", {"channel": "matrix"})
    status = await channel_status(peer, "matrix")
    assert (status["running"], status["lastError"]) == (False, "logged out")
    secret = matrix.bot.password.encode()
    leaked = await asyncio.to_thread(_files_holding, gateway.home, secret)
    assert leaked == []


def _files_holding(home: Path, secret: bytes) -> list[Path]:
    return [p for p in home.rglob("*") if p.is_file() and secret in p.read_bytes()]


async def test_odd_events_are_skipped_and_a_long_message_comes_back_in_chunks(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    gateway, room = await paired(gateway_factory, client_factory, matrix)
    human, bot = matrix.human, matrix.bot
    await human.send(room, {"msgtype": "m.text", "body": ""})
    first = await human.say(room, "edit me")
    await human.wait_message(room, bot.user_id, "edit me")
    await human.send(
        room,
        {
            "msgtype": "m.text",
            "body": "* edited text",
            "m.new_content": {"msgtype": "m.text", "body": "edited text"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": first},
        },
    )
    await human.send(room, {"msgtype": "org.example.unknown", "body": "strange"})
    await human.send(room, {"weird": True}, kind="org.example.event")
    await human.send(room, {"msgtype": "m.notice", "body": "another bot speaking"})
    # Synapse refuses events over 64 KiB, so this is about the largest a person can send.
    long_text = "long " + "x" * 50_000 + " end"
    await human.say(room, long_text)
    parts = await wait_for(
        lambda: (
            [p for p in human.messages(room, bot.user_id) if "x" * 100 in p["content"]["body"]]
            if human.messages(room, bot.user_id, " end")
            else None
        ),
        timeout=WAIT_S,
    )
    assert len(parts) >= 7 and all(len(p["content"]["body"]) <= 8000 for p in parts)
    await human.say(room, "marker")
    await human.wait_message(room, bot.user_id, "marker")
    assert not bot_said(human, room, matrix, "strange")
    assert not bot_said(human, room, matrix, "another bot speaking")
    assert not bot_said(human, room, matrix, "edited text")
    peer = await operator(client_factory, gateway)
    status = await channel_status(peer, "matrix")
    assert (status["state"], status["reconnects"]) == ("connected", 0)


async def test_a_gateway_without_a_connected_account_still_starts(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    table = matrix_table(matrix, homeserver="http://127.0.0.1:9")
    gateway = await channel_gateway(gateway_factory, table)
    peer = await operator(client_factory, gateway)
    await wait_for(
        lambda: _last_error_mentions(peer, "network error"), timeout=WAIT_S, interval=0.1
    )
    health = await peer.client.call("health")
    assert health is not None


async def _last_error_mentions(peer: Peer, text: str) -> bool:
    error = (await channel_status(peer, "matrix"))["lastError"]
    return bool(error and text in error)


async def test_doctor_checks_a_matrix_access_token_against_the_homeserver(
    matrix: MatrixWorld,
) -> None:
    probes = DoctorProbes()
    options = {"homeserver": matrix.synapse.url, "user_id": matrix.bot.user_id}
    good = {**options, "auth": "access_token"}
    ok = await asyncio.to_thread(probes.channel_problem, "matrix", good, matrix.bot.access_token)
    refused = await asyncio.to_thread(probes.channel_problem, "matrix", good, "syt_nope")
    wrong_user = {**good, "user_id": matrix.human.user_id}
    mismatch = await asyncio.to_thread(
        probes.channel_problem, "matrix", wrong_user, matrix.bot.access_token
    )
    assert ok is None
    assert refused == "the homeserver refused the access token (401)"
    assert mismatch is not None and matrix.bot.user_id in mismatch


@pytest.mark.slow
async def test_more_messages_than_one_sync_carries_are_back_filled_and_answered_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    gateway, room = await paired(gateway_factory, client_factory, matrix)
    human, bot = matrix.human, matrix.bot
    await gateway.server.stop()
    count = TIMELINE_LIMIT + 10
    for n in range(count):
        await human.say(room, f"missed #{n}.")
    await gateway.restart()
    for n in (0, count // 2, count - 1):
        await human.wait_message(room, bot.user_id, f"missed #{n}.")
    await wait_for(
        lambda: len(human.messages(room, bot.user_id, "missed #")) >= count, timeout=WAIT_S
    )
    await human.say(room, "marker")
    await human.wait_message(room, bot.user_id, "marker")
    for n in range(count):
        assert len(human.messages(room, bot.user_id, f"missed #{n}.")) == 1, n


@pytest.mark.slow
async def test_a_homeserver_that_never_answers_is_caught_by_the_progress_signal(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, matrix: MatrixWorld
) -> None:
    held: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepted, read by nobody, never answered: a wedged server

    silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        table = matrix_table(matrix, homeserver=f"http://127.0.0.1:{port}", sync_timeout_s=1)
        gateway = await channel_gateway(gateway_factory, table)
        peer = await operator(client_factory, gateway)
        await wait_for(lambda: _last_error_mentions(peer, "no progress"), timeout=WAIT_S)
        status = await channel_status(peer, "matrix")
        assert status["running"] and not status["connected"]
        await wait_for(lambda: _reconnected(peer), timeout=WAIT_S)
    finally:
        for writer in held:
            writer.close()
        silent.close()


async def _reconnected(peer: Peer) -> bool:
    return bool((await channel_status(peer, "matrix"))["reconnects"] >= 1)
