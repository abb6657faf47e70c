"""Signal end to end: a real gateway, our aiohttp client of signal-cli, the daemon stand-in."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from clawgate.config import AgentSection
from clawgate.service.doctor import DoctorProbes
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.signal_cli import ACCOUNT, GROUP_ID, FakeSignalCli, Sent
from tests.integration.channels.harness import (
    approve_pending,
    channel_gateway,
    channel_status,
    operator,
    wait_for,
)
from tests.integration.conftest import PeerFactory

ALICE = "+15550002222"
BOB = "+15550003333"


def signal_table(
    fake: FakeSignalCli, attachments: Path | None = None, **overrides: Any
) -> dict[str, Any]:
    """Return a `[channels.signal]` table pointing at the stand-in."""
    table = {"account": ACCOUNT, "http_url": fake.http_url, "debounce_ms": 0, **overrides}
    if attachments is not None:
        table["attachments_dir"] = str(attachments)
    return {"signal": table}


async def signal_gateway(
    factory: GatewayFactory, fake: FakeSignalCli, **overrides: Any
) -> RunningGateway:
    """Start a gateway with the Signal channel on the stand-in, once it reads events."""
    gateway = await channel_gateway(factory, signal_table(fake, **overrides))
    await fake.wait_streams(1)
    return gateway


async def paired(
    factory: GatewayFactory, clients: PeerFactory, fake: FakeSignalCli, **overrides: Any
) -> RunningGateway:
    """Start a gateway and pair Alice through the real pairing flow."""
    gateway = await signal_gateway(factory, fake, **overrides)
    peer = await operator(clients, gateway)
    await fake.user_says("hi", number=ALICE)
    await approve_pending(peer, "signal")
    return gateway


def replies(fake: FakeSignalCli, chat: str, containing: str) -> list[Sent]:
    """Return the messages the bot sent to `chat` that contain `containing`."""
    return [
        s for s in fake.sent if s.method == "send" and s.chat == chat and containing in s.message
    ]


async def test_unknown_dm_sender_gets_a_pairing_code_and_no_agent_reply(
    gateway_factory: GatewayFactory, signal_cli: FakeSignalCli
) -> None:
    await signal_gateway(gateway_factory, signal_cli)
    await signal_cli.user_says("please run rm -rf /", number=ALICE)
    [sent] = await signal_cli.wait_sent(chat=ALICE)
    assert "Pairing code:" in sent.message and "rm -rf" not in sent.message


async def test_a_paired_dm_is_answered_by_the_agent_without_a_quote(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    await paired(gateway_factory, client_factory, signal_cli)
    await signal_cli.user_says("what is the weather", number=ALICE)
    [reply] = await wait_for(lambda: replies(signal_cli, ALICE, "what is the weather"))
    assert reply.quote_timestamp is None


async def test_a_mention_in_a_group_is_answered_in_the_group_quoting_it(
    gateway_factory: GatewayFactory, signal_cli: FakeSignalCli
) -> None:
    await signal_gateway(gateway_factory, signal_cli, groups=[GROUP_ID])
    envelope = await signal_cli.user_says(
        "are you there", number=BOB, group_id=GROUP_ID, mention_bot=True
    )
    [reply] = await wait_for(lambda: replies(signal_cli, GROUP_ID, "are you there"))
    assert reply.recipient is None and "\ufffc" not in reply.message
    assert (reply.quote_author, reply.quote_timestamp) == (BOB, envelope["timestamp"])


async def test_a_group_message_without_a_mention_is_ignored(
    gateway_factory: GatewayFactory, signal_cli: FakeSignalCli
) -> None:
    await signal_gateway(gateway_factory, signal_cli, groups=[GROUP_ID])
    await signal_cli.user_says("chatting among ourselves", number=BOB, group_id=GROUP_ID)
    await signal_cli.user_says("marker", number=BOB, group_id=GROUP_ID, mention_bot=True)
    await wait_for(lambda: replies(signal_cli, GROUP_ID, "marker"))
    assert replies(signal_cli, GROUP_ID, "among ourselves") == []


async def test_a_group_session_is_keyed_by_the_group_id(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    gateway = await signal_gateway(gateway_factory, signal_cli, groups=[GROUP_ID])
    peer = await operator(client_factory, gateway)
    await signal_cli.user_says("start", number=BOB, group_id=GROUP_ID, mention_bot=True)
    await wait_for(lambda: replies(signal_cli, GROUP_ID, "start"))
    sessions = await peer.client.call("sessions.list")
    assert f"agent:main:signal:group:{GROUP_ID}" in [s["key"] for s in sessions["sessions"]]


async def test_a_long_reply_arrives_in_order_in_4000_character_chunks(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    await paired(gateway_factory, client_factory, signal_cli)
    words = " ".join(f"w{n:04d}" + "x" * 95 for n in range(200))
    await signal_cli.user_says(words + " END", number=ALICE)
    await wait_for(lambda: replies(signal_cli, ALICE, "END"))
    chunks = [s for s in signal_cli.sent if s.method == "send" and s.chat == ALICE][1:]
    assert all(len(c.message) <= 4000 for c in chunks) and len(chunks) >= 5
    numbers = [w for w in " ".join(c.message for c in chunks).split() if w.startswith("w")]
    assert numbers == sorted(numbers) and len(numbers) == 200


async def test_an_attachment_is_copied_into_the_media_folder_for_the_agent(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    signal_cli: FakeSignalCli,
    tmp_path: Path,
) -> None:
    store = tmp_path / "signal-cli-attachments"
    store.mkdir()
    (store / "AbCdEf123.png").write_bytes(b"\x89PNG fake image")
    gateway = await paired(gateway_factory, client_factory, signal_cli, attachments=store)
    item = {"id": "AbCdEf123.png", "contentType": "image/png", "filename": "cat.png", "size": 15}
    await signal_cli.user_says("look at this", number=ALICE, attachments=[item])
    await wait_for(lambda: replies(signal_cli, ALICE, "look at this"))
    [copied] = [p for p in (gateway.home / "media").rglob("*.png") if p.is_file()]
    assert copied.read_bytes() == b"\x89PNG fake image"
    assert copied.stat().st_mode & 0o777 == 0o600


async def test_send_delivers_a_file_as_an_attachment(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    gateway = await signal_gateway(gateway_factory, signal_cli)
    peer = await operator(client_factory, gateway)
    media = gateway.home / "media"
    media.mkdir(mode=0o700, exist_ok=True)
    (media / "chart.png").write_bytes(b"\x89PNG fake image")
    params = {
        "to": ALICE,
        "channel": "signal",
        "message": "the chart",
        "mediaUrl": str(media / "chart.png"),
        "idempotencyKey": "file",
    }
    result = await peer.client.call("send", params)
    [sent] = [s for s in signal_cli.sent if s.attachments]
    assert sent.attachments == [str(media / "chart.png")] and sent.recipient == ALICE
    assert result["messageId"].startswith(f"{ACCOUNT}:")


async def test_send_to_a_group_uses_its_group_id(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    gateway = await signal_gateway(gateway_factory, signal_cli)
    peer = await operator(client_factory, gateway)
    params = {"to": GROUP_ID, "channel": "signal", "message": "note", "idempotencyKey": "g"}
    await peer.client.call("send", params)
    [sent] = replies(signal_cli, GROUP_ID, "note")
    assert (sent.group_id, sent.recipient) == (GROUP_ID, None)


async def test_channels_status_shows_the_connected_signal_account(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    gateway = await signal_gateway(gateway_factory, signal_cli)
    peer = await operator(client_factory, gateway)

    async def connected() -> dict[str, Any] | None:
        status = await channel_status(peer, "signal")
        return status if status["connected"] else None

    status = await wait_for(connected)
    assert status["running"] is True and status["lastError"] is None


async def test_doctor_asks_signal_cli_whether_it_holds_the_account(
    signal_cli: FakeSignalCli,
) -> None:
    probes = DoctorProbes()
    options = {"http_url": signal_cli.http_url, "account": ACCOUNT}
    ok = await asyncio.to_thread(probes.channel_problem, "signal", options, "")
    other = {**options, "account": "+15550009999"}
    refused = await asyncio.to_thread(probes.channel_problem, "signal", other, "")
    assert ok is None
    assert refused is not None and "Specified account does not exist" in refused


async def test_typing_is_shown_in_the_chat_while_the_agent_works(
    gateway_factory: GatewayFactory, signal_cli: FakeSignalCli
) -> None:
    table = signal_table(signal_cli, dm_policy="open")
    await channel_gateway(gateway_factory, table, agent=AgentSection(echo_delay_ms=300))
    await signal_cli.wait_streams(1)
    await signal_cli.user_says("take your time", number=ALICE)
    await wait_for(lambda: replies(signal_cli, ALICE, "take your time"))
    typing = [s for s in signal_cli.sent if s.method == "sendTyping"]
    assert typing and typing[0].recipient == ALICE
