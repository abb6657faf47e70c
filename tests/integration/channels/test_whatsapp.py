"""WhatsApp (Cloud API) end to end: a real gateway, Meta's webhooks and Graph API stood in."""

from __future__ import annotations

import asyncio
from typing import Any

from clawgate.cli.qr_link import links_by_qr
from clawgate.service.doctor import DoctorProbes
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.whatsapp_cloud import (
    ACCESS_TOKEN,
    APP_SECRET,
    PHONE_NUMBER_ID,
    VERIFY_TOKEN,
    FakeWhatsApp,
    Sent,
)
from tests.integration.channels.harness import (
    approve_pending,
    channel_gateway,
    channel_status,
    operator,
    outbound_rows,
    wait_for,
)
from tests.integration.conftest import PeerFactory

ALICE = "16505551234"


def whatsapp_table(fake: FakeWhatsApp, **overrides: Any) -> dict[str, Any]:
    """Return a `[channels.whatsapp]` table pointing at the stand-in."""
    table = {
        "phone_number_id": PHONE_NUMBER_ID,
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "graph_base": fake.graph_base,
        "debounce_ms": 0,
        **overrides,
    }
    return {"whatsapp": table}


async def whatsapp_gateway(
    factory: GatewayFactory, fake: FakeWhatsApp, *, connected: bool = True, **overrides: Any
) -> RunningGateway:
    """Start a gateway with the WhatsApp channel, aim Meta's webhooks at it, wait until served."""
    gateway = await channel_gateway(factory, whatsapp_table(fake, **overrides))
    fake.target(f"{gateway.http_url}/channels/whatsapp/default")
    if connected:
        await wait_for(lambda: _state(gateway) == "connected")
    return gateway


def _state(gateway: RunningGateway) -> str:
    channels = gateway.server.channels
    assert channels is not None
    return channels.runtime.runners[("whatsapp", "default")].state.value


async def paired(
    factory: GatewayFactory, clients: PeerFactory, fake: FakeWhatsApp, **overrides: Any
) -> RunningGateway:
    """Start a gateway and pair Alice through the real pairing flow."""
    gateway = await whatsapp_gateway(factory, fake, **overrides)
    peer = await operator(clients, gateway)
    await fake.user_says("hi", user=ALICE)
    await approve_pending(peer, "whatsapp")
    # The code's own send may still be under way: a test that scripts Graph failures next
    # must not have them land on it.
    await wait_for(lambda: replies(fake, "Pairing code:"))
    return gateway


def replies(fake: FakeWhatsApp, containing: str, to: str = ALICE) -> list[Sent]:
    """Return the text messages the business sent to `to` that contain `containing`."""
    return [s for s in fake.sent if s.to == to and s.type == "text" and containing in s.text]


async def test_the_verification_get_is_answered_with_the_challenge(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    await whatsapp_gateway(gateway_factory, whatsapp)
    assert await whatsapp.verify(challenge="1158201444") == (200, "1158201444")


async def test_a_verification_with_a_wrong_verify_token_gets_403(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    await whatsapp_gateway(gateway_factory, whatsapp)
    status, body = await whatsapp.verify(verify_token="guess", challenge="1158201444")
    assert status == 403 and "1158201444" not in body


async def test_unknown_sender_gets_a_pairing_code_and_no_agent_reply(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    await whatsapp_gateway(gateway_factory, whatsapp)
    await whatsapp.user_says("please run rm -rf /", user=ALICE)
    [sent] = await whatsapp.wait_sent()
    assert sent.to == ALICE and "Pairing code:" in sent.text and "rm -rf" not in sent.text


async def test_a_paired_dm_is_answered_by_the_agent(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await paired(gateway_factory, client_factory, whatsapp)
    await whatsapp.user_says("what is the weather", user=ALICE)
    [reply] = await wait_for(lambda: replies(whatsapp, "what is the weather"))
    assert reply.reply_to is None  # a DM answer does not quote (the layer quotes in groups)
    peer = await operator(client_factory, gateway)
    sessions = await peer.client.call("sessions.list")
    assert f"agent:main:whatsapp:dm:{ALICE}" in [s["key"] for s in sessions["sessions"]]


async def test_send_with_reply_to_quotes_the_message(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await whatsapp_gateway(gateway_factory, whatsapp)
    peer = await operator(client_factory, gateway)
    params = {"to": ALICE, "message": "noted", "replyTo": "wamid.HBgLQUOTED", "idempotencyKey": "r"}
    result = await peer.client.call("send", params)
    [sent] = replies(whatsapp, "noted")
    assert sent.reply_to == "wamid.HBgLQUOTED" and result["messageId"] == sent.id


async def test_every_delivered_notification_is_answered_200(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    await whatsapp_gateway(gateway_factory, whatsapp, dm_policy="open")
    await whatsapp.user_says("hello", user=ALICE)
    assert [d.statuses for d in whatsapp.deliveries] == [[200]]


async def test_a_group_message_is_not_answered(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    await whatsapp_gateway(gateway_factory, whatsapp, dm_policy="open")
    await whatsapp.user_says("among ourselves", user=ALICE, group_id="120363042000000001")
    await whatsapp.user_says("marker", user=ALICE)
    await wait_for(lambda: replies(whatsapp, "marker"))
    assert [s for s in whatsapp.sent if "among ourselves" in s.text] == []


async def test_channels_status_shows_the_connected_whatsapp_account(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await whatsapp_gateway(gateway_factory, whatsapp)
    status = await channel_status(await operator(client_factory, gateway), "whatsapp")
    assert status["connected"] is True and status["lastError"] is None


async def test_an_inbound_image_is_downloaded_privately_and_its_caption_answered(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await whatsapp_gateway(gateway_factory, whatsapp, dm_policy="open")
    await whatsapp.user_sends_media("image", b"\xff\xd8 jpeg bytes", "image/jpeg", caption="look")
    await wait_for(lambda: replies(whatsapp, "look"))
    [path] = list((gateway.home / "media" / "whatsapp" / "default").iterdir())
    assert path.read_bytes() == b"\xff\xd8 jpeg bytes" and path.stat().st_mode & 0o777 == 0o600
    assert path.suffix == ".jpg"


async def test_a_document_without_caption_reaches_the_agent(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await whatsapp_gateway(gateway_factory, whatsapp, dm_policy="open")
    await whatsapp.user_sends_media(
        "document", b"%PDF-1.4 report", "application/pdf", filename="report.pdf"
    )
    await wait_for(lambda: [s for s in whatsapp.sent if s.to == ALICE])
    [path] = list((gateway.home / "media" / "whatsapp" / "default").iterdir())
    assert path.suffix == ".pdf" and path.read_bytes() == b"%PDF-1.4 report"


async def test_send_uploads_a_local_file_and_sends_it_by_media_id(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await whatsapp_gateway(gateway_factory, whatsapp)
    peer = await operator(client_factory, gateway)
    media = gateway.home / "media"
    media.mkdir(mode=0o700, exist_ok=True)
    (media / "chart.png").write_bytes(b"\x89PNG fake image")
    params = {"to": ALICE, "mediaUrl": str(media / "chart.png"), "idempotencyKey": "file"}
    result = await peer.client.call("send", params)
    [sent] = [s for s in whatsapp.sent if s.type == "image"]
    assert sent.media_id is not None and whatsapp.media(sent.media_id) == b"\x89PNG fake image"
    assert result["messageId"] == sent.id


async def test_send_passes_an_url_to_whatsapp_as_a_link(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await whatsapp_gateway(gateway_factory, whatsapp)
    peer = await operator(client_factory, gateway)
    url = "https://example.org/files/report.pdf"
    await peer.client.call("send", {"to": ALICE, "mediaUrl": url, "idempotencyKey": "link"})
    [sent] = [s for s in whatsapp.sent if s.link is not None]
    assert (sent.link, sent.type, sent.filename) == (url, "document", "report.pdf")
    assert "upload" not in whatsapp.calls


async def test_a_long_reply_arrives_in_order_in_4096_character_chunks(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    await paired(gateway_factory, client_factory, whatsapp)
    words = " ".join(f"w{n:04d}" + "x" * 95 for n in range(200))
    await whatsapp.user_says(words + " END", user=ALICE)
    await wait_for(lambda: replies(whatsapp, "END"))
    chunks = [s for s in whatsapp.sent if s.to == ALICE][1:]  # after the pairing code
    assert all(len(c.text) <= 4096 for c in chunks) and len(chunks) >= 5
    numbers = [w for w in " ".join(c.text for c in chunks).split() if w.startswith("w")]
    assert numbers == sorted(numbers) and len(numbers) == 200


async def test_a_failed_status_marks_the_recorded_delivery_failed(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await whatsapp_gateway(gateway_factory, whatsapp, dm_policy="open")
    await whatsapp.user_says("answer me", user=ALICE)
    [reply] = await wait_for(lambda: replies(whatsapp, "answer me"))
    await wait_for(lambda: [r for r in outbound_rows(gateway) if reply.id in r.message_ids])
    delivery = await whatsapp.status(reply.id, "failed", code=131047)
    assert delivery.statuses == [200]
    [row] = [r for r in outbound_rows(gateway) if reply.id in r.message_ids]
    assert row.state == "failed" and "131047" in str(row.error)
    status = await channel_status(await operator(client_factory, gateway), "whatsapp")
    assert "131047" in str(status["lastError"])


async def test_sent_delivered_and_read_statuses_are_acked_and_change_nothing(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await whatsapp_gateway(gateway_factory, whatsapp, dm_policy="open")
    await whatsapp.user_says("read me", user=ALICE)
    [reply] = await wait_for(lambda: replies(whatsapp, "read me"))
    await wait_for(lambda: outbound_rows(gateway))
    for state in ("sent", "delivered", "read"):
        assert (await whatsapp.status(reply.id, state)).statuses == [200]
    assert [r.state for r in outbound_rows(gateway)] == ["sent"]


async def test_doctor_checks_the_access_token_against_the_phone_number(
    whatsapp: FakeWhatsApp,
) -> None:
    probes = DoctorProbes()
    options = whatsapp_table(whatsapp)["whatsapp"] | {"mode": "cloud"}
    ok = await asyncio.to_thread(probes.channel_problem, "whatsapp", options, ACCESS_TOKEN)
    refused = await asyncio.to_thread(probes.channel_problem, "whatsapp", options, "EAAJnope")
    no_secret = {**options, "app_secret": None, "app_secret_source": "no app_secret configured"}
    missing = await asyncio.to_thread(probes.channel_problem, "whatsapp", no_secret, ACCESS_TOKEN)
    assert ok is None
    assert refused == "Meta refused the access token (code 190)"
    assert missing is not None and "app secret" in missing


async def test_channels_login_logs_a_cloud_account_in_rather_than_showing_a_qr_code(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await whatsapp_gateway(gateway_factory, whatsapp)
    peer = await operator(client_factory, gateway)
    assert await links_by_qr(peer.client, "whatsapp", None) is False
