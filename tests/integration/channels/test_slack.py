"""Slack end to end: a real gateway, slack-sdk's Socket Mode and Web API clients, the stand-in."""

from __future__ import annotations

import asyncio
from typing import Any

from clawgate.service.doctor import DoctorProbes
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, BOT_USER_ID, FakeSlack, Posted
from tests.integration.channels.harness import (
    approve_pending,
    channel_gateway,
    channel_status,
    operator,
    wait_for,
)
from tests.integration.conftest import PeerFactory

ALICE = "U0ALICE"
DM = "D0ALICE"
CHANNEL = "C0GENERAL"


def slack_table(fake: FakeSlack, **overrides: Any) -> dict[str, Any]:
    """Return a `[channels.slack]` table pointing at the stand-in."""
    table = {
        "bot_token": BOT_TOKEN,
        "app_token": APP_TOKEN,
        "api_base": fake.api_base,
        "debounce_ms": 0,
        **overrides,
    }
    return {"slack": table}


async def slack_gateway(
    factory: GatewayFactory, fake: FakeSlack, **overrides: Any
) -> RunningGateway:
    """Start a gateway with the Slack channel on the stand-in, once it is connected."""
    gateway = await channel_gateway(factory, slack_table(fake, **overrides))
    await fake.wait_connections(1)
    return gateway


async def paired(
    factory: GatewayFactory, clients: PeerFactory, fake: FakeSlack, **overrides: Any
) -> RunningGateway:
    """Start a gateway and pair Alice through the real pairing flow."""
    gateway = await slack_gateway(factory, fake, **overrides)
    peer = await operator(clients, gateway)
    await fake.user_says("hi", user=ALICE, channel=DM)
    await approve_pending(peer, "slack")
    return gateway


def replies(fake: FakeSlack, channel: str, containing: str) -> list[Posted]:
    """Return the messages the bot posted to `channel` that contain `containing`."""
    return [
        p
        for p in fake.posted
        if p.method == "chat.postMessage" and p.channel == channel and containing in p.text
    ]


async def test_unknown_dm_sender_gets_a_pairing_code_and_no_agent_reply(
    gateway_factory: GatewayFactory, slack: FakeSlack
) -> None:
    await slack_gateway(gateway_factory, slack)
    await slack.user_says("please run rm -rf /", user=ALICE, channel=DM)
    [sent] = await slack.wait_sent(channel=DM)
    assert "Pairing code:" in sent.text and "rm -rf" not in sent.text


async def test_a_paired_dm_is_answered_by_the_agent_outside_any_thread(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await paired(gateway_factory, client_factory, slack)
    await slack.user_says("what is the weather", user=ALICE, channel=DM)
    [reply] = await wait_for(lambda: replies(slack, DM, "what is the weather"))
    assert reply.thread_ts is None


async def test_a_mention_in_a_channel_is_answered_in_its_thread(
    gateway_factory: GatewayFactory, slack: FakeSlack
) -> None:
    await slack_gateway(gateway_factory, slack, groups=[CHANNEL], group_policy="open")
    ts = await slack.user_says(f"<@{BOT_USER_ID}> are you there", channel=CHANNEL)
    [reply] = await wait_for(lambda: replies(slack, CHANNEL, "are you there"))
    assert reply.thread_ts == ts
    assert f"<@{BOT_USER_ID}>" not in reply.text


async def test_a_channel_message_without_a_mention_is_ignored(
    gateway_factory: GatewayFactory, slack: FakeSlack
) -> None:
    await slack_gateway(gateway_factory, slack, groups=[CHANNEL])
    await slack.user_says("chatting among ourselves", channel=CHANNEL)
    await slack.user_says(f"<@{BOT_USER_ID}> marker", channel=CHANNEL)
    await wait_for(lambda: replies(slack, CHANNEL, "marker"))
    assert replies(slack, CHANNEL, "among ourselves") == []


async def test_a_reply_in_a_thread_stays_in_that_thread_and_its_session(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    gateway = await slack_gateway(gateway_factory, slack, groups=[CHANNEL])
    peer = await operator(client_factory, gateway)
    root = await slack.user_says(f"<@{BOT_USER_ID}> start", channel=CHANNEL)
    await wait_for(lambda: replies(slack, CHANNEL, "start"))
    await slack.user_says(f"<@{BOT_USER_ID}> follow up", channel=CHANNEL, thread_ts=root)
    [reply] = await wait_for(lambda: replies(slack, CHANNEL, "follow up"))
    assert reply.thread_ts == root
    sessions = await peer.client.call("sessions.list")
    keys = [s["key"] for s in sessions["sessions"]]
    assert f"agent:main:slack:group:{CHANNEL}:thread:{root}" in keys


async def test_every_envelope_is_acked(gateway_factory: GatewayFactory, slack: FakeSlack) -> None:
    await slack_gateway(gateway_factory, slack)
    await slack.user_says("hello", user=ALICE, channel=DM)
    await slack.send_event({"type": "reaction_added", "user": ALICE, "reaction": "+1"})
    envelopes = await slack.wait_acked()
    assert len(envelopes) == 2


async def test_an_app_mention_and_its_message_event_are_answered_once(
    gateway_factory: GatewayFactory, slack: FakeSlack
) -> None:
    await slack_gateway(gateway_factory, slack, groups=[CHANNEL])
    text = f"<@{BOT_USER_ID}> only once"
    ts = await slack.user_says(text, channel=CHANNEL)
    event = {"type": "app_mention", "user": ALICE, "text": text, "ts": ts, "channel": CHANNEL}
    await slack.send_event(event)
    await wait_for(lambda: replies(slack, CHANNEL, "only once"))
    await slack.user_says(f"<@{BOT_USER_ID}> marker", channel=CHANNEL)
    await wait_for(lambda: replies(slack, CHANNEL, "marker"))
    assert len(replies(slack, CHANNEL, "only once")) == 1


async def test_a_refresh_requested_disconnect_reconnects_and_loses_nothing(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await paired(gateway_factory, client_factory, slack)
    await slack.refresh()
    await slack.user_says("sent across the refresh", user=ALICE, channel=DM)
    await slack.wait_connections(2)
    await wait_for(lambda: replies(slack, DM, "sent across the refresh"))
    await slack.wait_acked()
    assert len(replies(slack, DM, "sent across the refresh")) == 1


async def test_a_429_on_post_is_retried_after_retry_after(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await paired(gateway_factory, client_factory, slack)
    slack.script("chat.postMessage", "429")
    await slack.user_says("rate limited", user=ALICE, channel=DM)
    await wait_for(lambda: replies(slack, DM, "rate limited"))
    assert slack.calls.count("chat.postMessage") >= 3  # code, the 429, the retry


async def test_a_long_reply_arrives_in_order_in_4000_character_chunks(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await paired(gateway_factory, client_factory, slack)
    words = " ".join(f"w{n:04d}" + "x" * 95 for n in range(200))
    await slack.user_says(words + " END", user=ALICE, channel=DM)
    await wait_for(lambda: replies(slack, DM, "END"))
    chunks = [p for p in slack.posted if p.channel == DM][1:]
    assert all(len(c.text) <= 4000 for c in chunks) and len(chunks) >= 5
    numbers = [w for w in " ".join(c.text for c in chunks).split() if w.startswith("w")]
    assert numbers == sorted(numbers) and len(numbers) == 200


async def test_channels_status_shows_the_connected_slack_account(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    gateway = await slack_gateway(gateway_factory, slack)
    peer = await operator(client_factory, gateway)

    async def connected() -> dict[str, Any] | None:
        status = await channel_status(peer, "slack")
        return status if status["connected"] else None

    status = await wait_for(connected)
    assert status["running"] is True and status["lastError"] is None


async def test_a_refused_app_token_fails_the_account_once_with_a_clear_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    gateway = await channel_gateway(
        gateway_factory, slack_table(slack, app_token="xapp-1-A0-revoked-token")
    )
    peer = await operator(client_factory, gateway)

    async def failed() -> dict[str, Any] | None:
        status = await channel_status(peer, "slack")
        return status if status["state"] == "failed" else None

    status = await wait_for(failed)
    assert "invalid_auth" in status["lastError"] and "revoked-token" not in str(status)
    calls = len(slack.calls)
    await asyncio.sleep(0.5)  # several restart delays of the fast test backoff
    assert len(slack.calls) == calls


async def test_doctor_checks_the_bot_token_with_auth_test(slack: FakeSlack) -> None:
    probes = DoctorProbes()
    options = {"api_base": slack.api_base, "app_token": APP_TOKEN}
    ok = await asyncio.to_thread(probes.channel_problem, "slack", options, BOT_TOKEN)
    refused = await asyncio.to_thread(probes.channel_problem, "slack", options, "xoxb-nope")
    no_app = {**options, "app_token": None, "app_token_source": "no app_token configured"}
    missing = await asyncio.to_thread(probes.channel_problem, "slack", no_app, BOT_TOKEN)
    assert ok is None
    assert refused == "Slack refused the bot token (invalid_auth)"
    assert missing is not None and "app-level token" in missing


async def test_send_uploads_a_file_from_the_media_folder_into_the_thread(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    gateway = await slack_gateway(gateway_factory, slack)
    peer = await operator(client_factory, gateway)
    media = gateway.home / "media"
    media.mkdir(mode=0o700)
    (media / "chart.png").write_bytes(b"\x89PNG fake image")
    params = {
        "to": CHANNEL,
        "mediaUrl": str(media / "chart.png"),
        "threadId": "1700000000.000100",
        "idempotencyKey": "file",
    }
    result = await peer.client.call("send", params)
    [upload] = [p for p in slack.posted if p.method == "files.completeUploadExternal"]
    assert (upload.channel, upload.thread_ts) == (CHANNEL, "1700000000.000100")
    assert (upload.file_name, upload.file_bytes) == ("chart.png", len(b"\x89PNG fake image"))
    assert result["messageId"].startswith("F")


async def test_send_delivers_text_into_a_thread(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    gateway = await slack_gateway(gateway_factory, slack)
    peer = await operator(client_factory, gateway)
    params = {"to": CHANNEL, "message": "note", "threadId": "1.000002", "idempotencyKey": "t"}
    result = await peer.client.call("send", params)
    [posted] = replies(slack, CHANNEL, "note")
    assert posted.thread_ts == "1.000002" and result["messageId"] == posted.ts


async def test_the_ack_reaction_marks_each_message_the_agent_takes_up(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await paired(gateway_factory, client_factory, slack, ack_reaction="eyes")
    ts = await slack.user_says("what is the weather", user=ALICE, channel=DM)
    await wait_for(lambda: replies(slack, DM, "what is the weather"))
    reacted = [(p.channel, p.ts, p.reaction) for p in slack.posted if p.method == "reactions.add"]
    assert reacted == [(DM, ts, "eyes")]  # not the pairing request: no turn took that up


async def test_without_an_ack_reaction_nothing_is_reacted(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await paired(gateway_factory, client_factory, slack)
    await slack.user_says("what is the weather", user=ALICE, channel=DM)
    await wait_for(lambda: replies(slack, DM, "what is the weather"))
    assert [p for p in slack.posted if p.method == "reactions.add"] == []
