"""Personal WhatsApp end to end: a real gateway, neonize's events and dispatcher, the stand-in.

What the stand-in cannot show is WhatsApp's own servers (tests/fakes/whatsapp_web.py says
what is real here): linking, messages, replies, the lock and the reconnect policy are ours.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message, ProtocolMessage

from clawgate.channels.session_lock import SessionLock
from clawgate.cli.qr_link import link_by_qr, links_by_qr
from clawgate.client import GatewayCallError
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.whatsapp_web import FakeWhatsAppWeb, SentMessage
from tests.integration.channels.harness import (
    approve_pending,
    channel_gateway,
    channel_status,
    operator,
    wait_for,
)
from tests.integration.conftest import Peer, PeerFactory

pytestmark = pytest.mark.asyncio

ALICE = "15557770000@s.whatsapp.net"
GROUP = "120363000000000001@g.us"


@pytest.fixture
def whatsapp(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeWhatsAppWeb]:
    """WhatsApp and the phone, standing in for neonize's client (see the fake's docstring)."""
    world = FakeWhatsAppWeb()
    monkeypatch.setattr("clawgate.channels.whatsapp_web.NewAClient", world.client_class())
    yield world


def session_dir(home: Path) -> Path:
    return home / "whatsapp" / "default"


async def wa_gateway(
    factory: GatewayFactory,
    world: FakeWhatsAppWeb,
    home: Path,
    *,
    linked: bool = True,
    **overrides: Any,
) -> RunningGateway:
    """Start a gateway with personal WhatsApp; `linked` means a saved session exists."""
    if linked:
        world.linked.add(str(session_dir(home) / "session.db"))
    table = {"mode": "web", "debounce_ms": 0, **overrides}
    gateway = await channel_gateway(factory, {"whatsapp": table}, home=home)
    await wait_for(lambda: world.clients)
    return gateway


async def connected(peer: Peer) -> dict[str, Any]:
    return await wait_for(lambda: _status_if(peer, lambda e: e["connected"]))


async def _status_if(peer: Peer, check: Any) -> dict[str, Any] | None:
    entry = await channel_status(peer, "whatsapp")
    return entry if check(entry) else None


def replies(world: FakeWhatsAppWeb, chat: str, containing: str) -> list[SentMessage]:
    return [m for m in world.sent if m.chat == chat and containing in m.text]


# -- linking ----------------------------------------------------------------------------------


async def test_an_unlinked_account_hands_out_its_qr_code_and_links_when_it_is_scanned(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    whatsapp: FakeWhatsAppWeb,
    tmp_path: Path,
) -> None:
    gateway = await wa_gateway(gateway_factory, whatsapp, tmp_path, linked=False)
    peer = await operator(client_factory, gateway)
    whatsapp.show_qr("2@first-code")
    started = await peer.client.call("web.login.start", {"channel": "whatsapp"})
    assert started["connected"] is False and started["qr"] == "2@first-code"
    assert started["qrDataUrl"].startswith("data:image/png;base64,")
    status = await channel_status(peer, "whatsapp")
    assert "clawgate channels login whatsapp" in (status["lastError"] or "")
    whatsapp.scan()
    waited = await peer.client.call("web.login.wait", {"timeoutMs": 5000})
    assert waited["connected"] is True
    await connected(peer)
    folder = session_dir(tmp_path)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "session.db").stat().st_mode) == 0o600


async def test_wait_answers_with_the_next_qr_code_when_the_shown_one_expires(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    whatsapp: FakeWhatsAppWeb,
    tmp_path: Path,
) -> None:
    gateway = await wa_gateway(gateway_factory, whatsapp, tmp_path, linked=False)
    peer = await operator(client_factory, gateway)
    whatsapp.show_qr("2@first")
    first = await peer.client.call("web.login.start", {})
    whatsapp.show_qr("2@second")
    second = await peer.client.call(
        "web.login.wait", {"currentQrDataUrl": first["qrDataUrl"], "timeoutMs": 5000}
    )
    assert (second["connected"], second["qr"]) == (False, "2@second")


async def test_a_linked_account_says_so_at_login(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    whatsapp: FakeWhatsAppWeb,
    tmp_path: Path,
) -> None:
    gateway = await wa_gateway(gateway_factory, whatsapp, tmp_path)
    peer = await operator(client_factory, gateway)
    await connected(peer)
    started = await peer.client.call("web.login.start", {})
    assert started == {"connected": True, "message": "whatsapp is linked"}


async def test_web_login_on_a_channel_without_qr_linking_is_refused(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    with pytest.raises(GatewayCallError) as refused:
        await peer.client.call("web.login.start", {"channel": "whatsapp"})
    assert refused.value.code == "INVALID_REQUEST"


# -- messages -------------------------------------------------------------------------------


async def test_a_stranger_gets_a_pairing_code_then_the_agent_answers_once_approved(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    whatsapp: FakeWhatsAppWeb,
    tmp_path: Path,
) -> None:
    gateway = await wa_gateway(gateway_factory, whatsapp, tmp_path)
    peer = await operator(client_factory, gateway)
    await connected(peer)
    whatsapp.says("please wire money")
    [code] = await wait_for(lambda: replies(whatsapp, ALICE, "Pairing code:"))
    assert "wire money" not in code.text
    await approve_pending(peer, "whatsapp")
    asked = whatsapp.says("what time is it")
    [reply] = await wait_for(lambda: replies(whatsapp, ALICE, "what time is it"))
    assert reply.quoted is None or reply.quoted == asked
    assert ALICE in whatsapp.typing


async def test_a_group_answers_mentions_only(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    whatsapp: FakeWhatsAppWeb,
    tmp_path: Path,
) -> None:
    gateway = await wa_gateway(gateway_factory, whatsapp, tmp_path, groups=[GROUP])
    peer = await operator(client_factory, gateway)
    await connected(peer)
    whatsapp.says("chatting among ourselves", group=GROUP)
    asked = whatsapp.says("bot, are you there", group=GROUP, mention_bot=True)
    [reply] = await wait_for(lambda: replies(whatsapp, GROUP, "are you there"))
    assert reply.quoted == asked
    assert replies(whatsapp, GROUP, "among ourselves") == []


async def test_a_redelivered_message_is_answered_once(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    whatsapp: FakeWhatsAppWeb,
    tmp_path: Path,
) -> None:
    gateway = await wa_gateway(gateway_factory, whatsapp, tmp_path, dm_policy="open")
    peer = await operator(client_factory, gateway)
    await connected(peer)
    whatsapp.says("only once", message_id="3EB0DUPLICATE")
    whatsapp.says("only once", message_id="3EB0DUPLICATE")
    whatsapp.says("marker after")
    await wait_for(lambda: replies(whatsapp, ALICE, "marker after"))
    assert len(replies(whatsapp, ALICE, "only once")) == 1


async def test_messages_without_text_and_unknown_events_are_skipped(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    whatsapp: FakeWhatsAppWeb,
    tmp_path: Path,
) -> None:
    from neonize.aioze.events import MessageEv, PresenceEv

    gateway = await wa_gateway(gateway_factory, whatsapp, tmp_path, dm_policy="open")
    peer = await operator(client_factory, gateway)
    await connected(peer)
    source = MessageSource(Chat=JID(User="15557770000", Server="s.whatsapp.net"))
    revoke = Message(protocolMessage=ProtocolMessage(type=ProtocolMessage.REVOKE))
    whatsapp.deliver(MessageEv(Info=MessageInfo(MessageSource=source, ID="X1"), Message=revoke))
    whatsapp.deliver(PresenceEv())
    whatsapp.says("x" * 100_000)
    whatsapp.says("still answering")
    await wait_for(lambda: replies(whatsapp, ALICE, "still answering"))
    assert (await channel_status(peer, "whatsapp"))["connected"] is True


async def test_a_refused_send_is_retried_and_delivered(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    whatsapp: FakeWhatsAppWeb,
    tmp_path: Path,
) -> None:
    gateway = await wa_gateway(gateway_factory, whatsapp, tmp_path, dm_policy="open")
    peer = await operator(client_factory, gateway)
    await connected(peer)
    whatsapp.send_failures = 2
    whatsapp.says("try again please")
    await wait_for(lambda: replies(whatsapp, ALICE, "try again please"))


# -- the session: reconnects, logout, the lock ------------------------------------------------


async def test_a_short_drop_is_waited_out_and_a_long_one_rebuilds_the_client(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    whatsapp: FakeWhatsAppWeb,
    tmp_path: Path,
) -> None:
    gateway = await wa_gateway(
        gateway_factory, whatsapp, tmp_path, dm_policy="open", reconnect_grace_s=1.0
    )
    peer = await operator(client_factory, gateway)
    await connected(peer)
    whatsapp.drop()
    whatsapp.restore()
    await connected(peer)
    assert len(whatsapp.clients) == 1
    whatsapp.drop()
    await wait_for(lambda: len(whatsapp.clients) == 2)
    await connected(peer)
    whatsapp.says("after the rebuild")
    await wait_for(lambda: replies(whatsapp, ALICE, "after the rebuild"))


async def test_a_logout_from_the_phone_stops_the_account_with_one_clear_error(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    whatsapp: FakeWhatsAppWeb,
    tmp_path: Path,
) -> None:
    gateway = await wa_gateway(gateway_factory, whatsapp, tmp_path)
    peer = await operator(client_factory, gateway)
    await connected(peer)
    whatsapp.log_out()
    entry = await wait_for(lambda: _status_if(peer, lambda e: e["state"] == "failed"))
    assert "logged this device out" in entry["lastError"]
    assert "clawgate channels login whatsapp" in entry["lastError"]
    assert len(whatsapp.clients) == 1  # not retried: no storm against WhatsApp


async def test_a_session_open_in_another_process_is_refused_not_taken_over(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    whatsapp: FakeWhatsAppWeb,
    tmp_path: Path,
) -> None:
    holder = SessionLock(session_dir(tmp_path) / "session.lock")
    holder.acquire()
    try:
        whatsapp.linked.add(str(session_dir(tmp_path) / "session.db"))
        table = {"mode": "web", "debounce_ms": 0}
        gateway = await channel_gateway(gateway_factory, {"whatsapp": table}, home=tmp_path)
        peer = await operator(client_factory, gateway)
        entry = await wait_for(lambda: _status_if(peer, lambda e: e["state"] == "failed"))
        assert f"process {os.getpid()}" in entry["lastError"]
        assert "only one process per host" in entry["lastError"]
        assert whatsapp.clients == []
    finally:
        holder.release()


# -- the CLI's side of linking ----------------------------------------------------------------


async def test_the_cli_draws_each_qr_code_until_the_phone_scans_one(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    whatsapp: FakeWhatsAppWeb,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gateway = await wa_gateway(gateway_factory, whatsapp, tmp_path, linked=False)
    peer = await operator(client_factory, gateway)
    whatsapp.show_qr("2@first")
    shown: list[str] = []

    def drawn(count: int) -> bool:
        shown.append(capsys.readouterr().out)
        return "".join(shown).count("Linked devices") >= count

    linking = asyncio.create_task(link_by_qr(peer.client, "whatsapp", None))
    await wait_for(lambda: drawn(1))
    whatsapp.show_qr("2@second")
    await wait_for(lambda: drawn(2))
    whatsapp.scan()
    assert await asyncio.wait_for(linking, 10) is True
    output = "".join(shown)
    assert "█" in output or "▀" in output  # segno's terminal drawing
    await connected(peer)


async def test_channels_login_shows_a_qr_code_for_a_web_account_only(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    whatsapp: FakeWhatsAppWeb,
    tmp_path: Path,
) -> None:
    gateway = await wa_gateway(gateway_factory, whatsapp, tmp_path, linked=False)
    peer = await operator(client_factory, gateway)
    assert await links_by_qr(peer.client, "whatsapp", None) is True
    assert await links_by_qr(peer.client, "whatsapp", "other") is False
    assert await links_by_qr(peer.client, "telegram", None) is False
