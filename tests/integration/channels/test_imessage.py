"""iMessage end to end: a real gateway, the BlueBubbles stand-in's REST API and webhooks."""

from __future__ import annotations

import asyncio
from typing import Any

from clawgate.service.doctor import DoctorProbes
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.bluebubbles import PASSWORD, FakeBlueBubbles, Sent, dm_guid, group_guid
from tests.integration.channels.harness import (
    approve_pending,
    channel_gateway,
    operator,
    wait_for,
)
from tests.integration.conftest import PeerFactory

ALICE = "+15550001111"
DM = dm_guid(ALICE)
GROUP = group_guid("family")
#: The name the BlueBubbles server reaches the gateway by (rewritten to its loopback port).
PUBLIC = "http://gateway.test:18789"


def imessage_table(fake: FakeBlueBubbles, **overrides: Any) -> dict[str, Any]:
    """Return a `[channels.imessage]` table pointing at the stand-in."""
    table = {
        "server_url": fake.url,
        "password": PASSWORD,
        "webhook_url": PUBLIC,
        "mention_names": ["Claw"],
        "debounce_ms": 0,
        **overrides,
    }
    return {"imessage": table}


async def imessage_gateway(
    factory: GatewayFactory, fake: FakeBlueBubbles, **overrides: Any
) -> RunningGateway:
    """Start a gateway with the iMessage channel on the stand-in, once its webhook is set."""
    gateway = await channel_gateway(factory, imessage_table(fake, **overrides))
    fake.reach[PUBLIC] = gateway.http_url
    await fake.wait_webhooks(1)
    return gateway


async def paired(
    factory: GatewayFactory, clients: PeerFactory, fake: FakeBlueBubbles, **overrides: Any
) -> RunningGateway:
    """Start a gateway and pair Alice through the real pairing flow."""
    gateway = await imessage_gateway(factory, fake, **overrides)
    peer = await operator(clients, gateway)
    await fake.user_says("hi", sender=ALICE)
    await approve_pending(peer, "imessage")
    return gateway


def replies(fake: FakeBlueBubbles, chat: str, containing: str) -> list[Sent]:
    """Return the texts the bot sent to `chat` that contain `containing`."""
    return [
        s
        for s in fake.sent
        if s.path == "message/text" and s.chat_guid == chat and containing in s.text
    ]


async def test_the_gateway_registers_its_webhook_with_a_fresh_token_at_start(
    gateway_factory: GatewayFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await imessage_gateway(gateway_factory, bluebubbles)
    [hook] = bluebubbles.webhooks.values()
    base, token = hook["url"].split("?token=")
    assert base == f"{PUBLIC}/channels/imessage/default" and len(token) >= 40
    assert hook["events"] == ["new-message", "updated-message", "message-send-error"]
    assert bluebubbles.requests[:2] == ["ping", "server/info"]


async def test_unknown_dm_sender_gets_a_pairing_code_and_no_agent_reply(
    gateway_factory: GatewayFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await imessage_gateway(gateway_factory, bluebubbles)
    await bluebubbles.user_says("please run rm -rf /", sender=ALICE)
    [sent] = await bluebubbles.wait_sent(chat_guid=DM)
    assert "Pairing code:" in sent.text and "rm -rf" not in sent.text


async def test_a_paired_dm_is_answered_by_the_agent(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await paired(gateway_factory, client_factory, bluebubbles)
    await bluebubbles.user_says("what is the weather", sender=ALICE)
    [reply] = await wait_for(lambda: replies(bluebubbles, DM, "what is the weather"))
    assert reply.method == "private-api" and reply.selected_guid is None
    assert reply.temp_guid


async def test_allowlist_policy_answers_listed_senders_and_refuses_others_silently(
    gateway_factory: GatewayFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await imessage_gateway(
        gateway_factory, bluebubbles, dm_policy="allowlist", allow_from=["bob@icloud.example"]
    )
    await bluebubbles.user_says("hello", sender=ALICE)
    await bluebubbles.user_says("from the listed one", sender="bob@icloud.example")
    await wait_for(lambda: replies(bluebubbles, dm_guid("bob@icloud.example"), "listed one"))
    assert [s for s in bluebubbles.sent if s.chat_guid == DM] == []


async def test_a_group_message_naming_the_bot_is_answered_as_a_reply_to_it(
    gateway_factory: GatewayFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await imessage_gateway(gateway_factory, bluebubbles, groups=[GROUP])
    guid = await bluebubbles.user_says("Claw, are you there", sender=ALICE, chat=GROUP)
    [reply] = await wait_for(lambda: replies(bluebubbles, GROUP, "are you there"))
    assert reply.selected_guid == guid and "Claw" not in reply.text


async def test_a_group_message_not_naming_the_bot_is_ignored(
    gateway_factory: GatewayFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await imessage_gateway(gateway_factory, bluebubbles, groups=[GROUP])
    await bluebubbles.user_says("chatting among ourselves", sender=ALICE, chat=GROUP)
    await bluebubbles.user_says("@claw marker", sender=ALICE, chat=GROUP)
    await wait_for(lambda: replies(bluebubbles, GROUP, "marker"))
    assert replies(bluebubbles, GROUP, "among ourselves") == []


async def test_a_group_not_in_the_allow_list_is_ignored_even_when_it_names_the_bot(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await paired(gateway_factory, client_factory, bluebubbles)
    await bluebubbles.user_says("Claw, let me in", sender=ALICE, chat=group_guid("other"))
    await bluebubbles.user_says("marker", sender=ALICE)
    await wait_for(lambda: replies(bluebubbles, DM, "marker"))
    assert [s for s in bluebubbles.sent if s.chat_guid == group_guid("other")] == []


async def test_without_the_private_api_answers_go_by_applescript_and_not_as_replies(
    gateway_factory: GatewayFactory,
) -> None:
    fake = FakeBlueBubbles(private_api=False)
    await fake.start()
    try:
        await imessage_gateway(gateway_factory, fake, groups=[GROUP])
        await fake.user_says("claw: hello there", sender=ALICE, chat=GROUP)
        [reply] = await wait_for(lambda: replies(fake, GROUP, "hello there"))
        assert (reply.method, reply.selected_guid) == ("apple-script", None)
    finally:
        await fake.stop()


async def test_an_attachment_is_downloaded_and_handed_to_the_agent(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    gateway = await paired(gateway_factory, client_factory, bluebubbles)
    photo = ("IMG_0001.png", "image/png", b"\x89PNG a small picture")
    await bluebubbles.user_says("look at this", sender=ALICE, attachments=(photo,))
    [reply] = await wait_for(lambda: replies(bluebubbles, DM, "look at this"))
    assert "image/png" in reply.text
    [saved] = [p for p in (gateway.home / "media").rglob("*.png")]
    assert saved.read_bytes() == photo[2] and saved.stat().st_mode & 0o077 == 0


async def test_send_uploads_a_file_as_an_attachment(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    gateway = await imessage_gateway(gateway_factory, bluebubbles)
    peer = await operator(client_factory, gateway)
    media = gateway.home / "media"
    media.mkdir(mode=0o700, exist_ok=True)
    (media / "chart.png").write_bytes(b"\x89PNG fake image")
    params = {"to": DM, "mediaUrl": str(media / "chart.png"), "idempotencyKey": "file"}
    result = await peer.client.call("send", params)
    [upload] = await bluebubbles.wait_sent(path="message/attachment")
    assert (upload.chat_guid, upload.file_name) == (DM, "chart.png")
    assert upload.file_bytes == len(b"\x89PNG fake image") and result["messageId"]


async def test_the_agent_turn_shows_the_typing_bubble(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await paired(gateway_factory, client_factory, bluebubbles)
    await bluebubbles.user_says("are you typing", sender=ALICE)
    await wait_for(lambda: replies(bluebubbles, DM, "are you typing"))
    assert [s.chat_guid for s in bluebubbles.sent if s.path == "chat/typing"][:1] == [DM]


async def test_doctor_checks_the_password_against_the_server(
    bluebubbles: FakeBlueBubbles,
) -> None:
    probes = DoctorProbes()
    options = {"server_url": bluebubbles.url}
    ok = await asyncio.to_thread(probes.channel_problem, "imessage", options, PASSWORD)
    refused = await asyncio.to_thread(probes.channel_problem, "imessage", options, "wrong")
    assert ok is None
    assert refused == "the BlueBubbles server refused the password (401)"
