"""Slack over the Events API: signed POSTs from the stand-in to the gateway's named webhook."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

from clawgate.service.doctor import DoctorProbes
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.integration.channels.harness import (
    approve_pending,
    channel_gateway,
    channel_status,
    operator,
    raw_post,
    wait_for,
)
from tests.integration.channels.test_slack import ALICE, DM, replies
from tests.integration.conftest import PeerFactory


def events_table(fake: FakeSlack, **overrides: Any) -> dict[str, Any]:
    """Return a `[channels.slack]` table in events mode on the stand-in (no app token)."""
    table = {
        "mode": "events",
        "bot_token": BOT_TOKEN,
        "signing_secret": SIGNING_SECRET,
        "api_base": fake.api_base,
        "debounce_ms": 0,
        **overrides,
    }
    return {"slack": table}


async def events_gateway(
    factory: GatewayFactory, clients: PeerFactory, fake: FakeSlack, **overrides: Any
) -> RunningGateway:
    """Start a gateway in events mode and point the stand-in's Request URL at it."""
    gateway = await channel_gateway(factory, events_table(fake, **overrides))
    peer = await operator(clients, gateway)

    async def connected() -> bool:
        return bool((await channel_status(peer, "slack"))["connected"])

    await wait_for(connected)
    fake.request_url = f"{gateway.http_url}/channels/slack/default"
    return gateway


async def paired_events(
    factory: GatewayFactory, clients: PeerFactory, fake: FakeSlack, **overrides: Any
) -> RunningGateway:
    """Start a gateway in events mode and pair Alice through the real pairing flow."""
    gateway = await events_gateway(factory, clients, fake, **overrides)
    peer = await operator(clients, gateway)
    await fake.user_says("hi", user=ALICE, channel=DM)
    await approve_pending(peer, "slack")
    return gateway


def _event_body(text: str) -> bytes:
    event = {"type": "message", "channel_type": "im", "user": ALICE, "channel": DM}
    event |= {"text": text, "ts": f"{int(time.time())}.000999"}
    return json.dumps({"type": "event_callback", "event_id": "Ev0FORGED", "event": event}).encode()


async def test_a_paired_dm_is_answered_in_events_mode(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await paired_events(gateway_factory, client_factory, slack)
    await slack.user_says("what is the weather", user=ALICE, channel=DM)
    [reply] = await wait_for(lambda: replies(slack, DM, "what is the weather"))
    assert reply.thread_ts is None
    assert all(e.statuses[0] == 200 for e in slack.envelopes)
    assert slack.connections == 0 and "apps.connections.open" not in slack.calls


async def test_an_unknown_dm_sender_gets_a_pairing_code_in_events_mode(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await events_gateway(gateway_factory, client_factory, slack)
    await slack.user_says("please run rm -rf /", user=ALICE, channel=DM)
    [sent] = await slack.wait_sent(channel=DM)
    assert "Pairing code:" in sent.text and "rm -rf" not in sent.text


async def test_a_request_signed_with_another_secret_gets_401_and_does_nothing(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    gateway = await events_gateway(gateway_factory, client_factory, slack, dm_policy="open")
    status, _ = await slack.post_signed(_event_body("forged"), secret="not-the-signing-secret")
    assert status == 401
    await slack.user_says("marker", user=ALICE, channel=DM)
    await wait_for(lambda: replies(slack, DM, "marker"))
    assert replies(slack, DM, "forged") == []
    peer = await operator(client_factory, gateway)
    sessions = await peer.client.call("sessions.list")
    assert len([s for s in sessions["sessions"] if "slack" in s["key"]]) == 1


async def test_a_request_without_a_signature_gets_401(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    gateway = await events_gateway(gateway_factory, client_factory, slack, dm_policy="open")
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.http_url}/channels/slack/default", data=_event_body("x")) as response,
    ):
        assert response.status == 401


async def test_a_signature_that_is_not_ascii_gets_401_not_a_server_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await events_gateway(gateway_factory, client_factory, slack, dm_policy="open")
    assert slack.request_url is not None
    stamp = str(int(time.time())).encode()
    for signature in ("v0=é".encode(), b"v0=\xff\xfe"):
        headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}
        assert await raw_post(slack.request_url, _event_body("forged"), headers) == 401
    await slack.user_says("marker", user=ALICE, channel=DM)
    await wait_for(lambda: replies(slack, DM, "marker"))
    assert replies(slack, DM, "forged") == []


async def test_a_request_with_a_timestamp_six_minutes_old_gets_401_and_does_nothing(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await events_gateway(gateway_factory, client_factory, slack, dm_policy="open")
    stale = int(time.time()) - 6 * 60
    status, _ = await slack.post_signed(_event_body("replayed"), timestamp=stale)
    assert status == 401
    await slack.user_says("marker", user=ALICE, channel=DM)
    await wait_for(lambda: replies(slack, DM, "marker"))
    assert replies(slack, DM, "replayed") == []


async def test_url_verification_is_answered_with_its_challenge(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await events_gateway(gateway_factory, client_factory, slack)
    challenge = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    assert await slack.verify_url(challenge) == (200, challenge)


async def test_a_retried_event_is_answered_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await paired_events(gateway_factory, client_factory, slack)
    await slack.user_says("only once please", user=ALICE, channel=DM)
    await wait_for(lambda: replies(slack, DM, "only once please"))
    envelope = slack.envelopes[-1]
    await slack.redeliver(envelope)
    await slack.user_says("marker", user=ALICE, channel=DM)
    await wait_for(lambda: replies(slack, DM, "marker"))
    assert envelope.statuses == [200, 200]
    assert len(replies(slack, DM, "only once please")) == 1


async def test_an_event_of_an_unknown_type_is_answered_200_and_ignored(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await events_gateway(gateway_factory, client_factory, slack, dm_policy="open")
    envelope = await slack.send_event({"type": "reaction_added", "user": ALICE, "reaction": "+1"})
    status, _ = await slack.post_signed(b'{"type": "app_rate_limited", "minute_rate_limited": 1}')
    assert (envelope.statuses, status) == ([200], 200)
    assert [p for p in slack.posted if p.method == "chat.postMessage"] == []


async def test_a_signed_body_that_is_not_json_gets_400(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await events_gateway(gateway_factory, client_factory, slack)
    status, _ = await slack.post_signed(b"payload=%7B%22type%22%3A")
    assert status == 400


async def test_an_oversized_request_is_refused_before_it_is_read(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await events_gateway(gateway_factory, client_factory, slack, dm_policy="open")
    status, _ = await slack.post_signed(_event_body("x" * 2_000_000))
    assert status == 413
    assert [p for p in slack.posted if p.method == "chat.postMessage"] == []


async def test_events_mode_without_a_signing_secret_fails_the_account_with_one_clear_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    table = events_table(slack)
    del table["slack"]["signing_secret"]
    gateway = await channel_gateway(gateway_factory, table)
    peer = await operator(client_factory, gateway)

    async def failed() -> dict[str, Any] | None:
        status = await channel_status(peer, "slack")
        return status if status["state"] == "failed" else None

    status = await wait_for(failed)
    assert "signing secret" in status["lastError"]
    assert "CLAWGATE_SLACK_SIGNING_SECRET" in status["lastError"]
    assert slack.calls == []


async def test_doctor_names_a_missing_signing_secret_in_events_mode(slack: FakeSlack) -> None:
    options = {"api_base": slack.api_base, "mode": "events", "signing_secret": None}
    options["signing_secret_source"] = "environment variable CLAWGATE_SLACK_SIGNING_SECRET"
    problem = await asyncio.to_thread(DoctorProbes().channel_problem, "slack", options, BOT_TOKEN)
    assert problem is not None and "CLAWGATE_SLACK_SIGNING_SECRET" in problem
