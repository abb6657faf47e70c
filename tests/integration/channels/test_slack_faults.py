"""Slack when things go wrong: redelivery, drops, refused sends and tokens, odd events."""

from __future__ import annotations

from tests.conftest import GatewayFactory
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, BOT_USER_ID, FakeSlack
from tests.integration.channels.harness import (
    channel_gateway,
    channel_status,
    failure_notes,
    operator,
    wait_for,
)
from tests.integration.channels.test_slack import (
    ALICE,
    CHANNEL,
    DM,
    paired,
    replies,
    slack_gateway,
    slack_table,
)
from tests.integration.conftest import PeerFactory


async def test_a_redelivered_envelope_is_answered_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await paired(gateway_factory, client_factory, slack)
    await slack.user_says("only once please", user=ALICE, channel=DM)
    await wait_for(lambda: replies(slack, DM, "only once please"))
    await slack.redeliver(slack.envelopes[-1])
    await slack.user_says("marker", user=ALICE, channel=DM)
    await wait_for(lambda: replies(slack, DM, "marker"))
    await slack.wait_acked()
    assert len(replies(slack, DM, "only once please")) == 1


async def test_a_dropped_socket_reconnects_and_what_came_meanwhile_is_answered(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await paired(gateway_factory, client_factory, slack)
    await slack.drop()
    await slack.user_says("while you were away", user=ALICE, channel=DM)
    await slack.wait_connections(2, timeout=20)
    await wait_for(lambda: replies(slack, DM, "while you were away"), timeout=20)


async def test_a_reply_slack_keeps_refusing_is_recorded_failed_on_the_session(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    gateway = await paired(gateway_factory, client_factory, slack)
    peer = await operator(client_factory, gateway)
    slack.script("chat.postMessage", "500", "500", "500")
    await slack.user_says("lost in transit", user=ALICE, channel=DM)
    key = f"agent:main:slack:dm:{ALICE}"
    [text] = await wait_for(lambda: failure_notes(peer, key))
    assert "3 attempt" in text
    status = await channel_status(peer, "slack")
    assert "500" in str(status["lastError"])


async def test_a_refused_bot_token_fails_the_account_with_a_clear_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    table = slack_table(slack, bot_token="xoxb-0-0-not-a-known-token")
    gateway = await channel_gateway(gateway_factory, table)
    peer = await operator(client_factory, gateway)

    async def failed() -> dict[str, object] | None:
        status = await channel_status(peer, "slack")
        return status if status["state"] == "failed" else None

    status = await wait_for(failed)
    assert "invalid_auth" in str(status["lastError"]) and "not-a-known" not in str(status)


async def test_odd_and_unknown_events_are_acked_and_skipped(
    gateway_factory: GatewayFactory, slack: FakeSlack
) -> None:
    await slack_gateway(gateway_factory, slack, groups=[CHANNEL])
    base = {"user": ALICE, "channel": CHANNEL, "ts": "1.000001"}
    await slack.send_event({"type": "message", "subtype": "channel_join", **base})
    await slack.send_event({"type": "message", "bot_id": "B9", "text": f"<@{BOT_USER_ID}>"})
    await slack.send_event({"type": "some_future_event", "payload": [1, 2, 3]})
    await slack.send_event({"type": "message", "text": 42, "ts": None})
    await slack.user_says(f"<@{BOT_USER_ID}> " + "y" * 50_000 + " marker", channel=CHANNEL)
    await wait_for(lambda: replies(slack, CHANNEL, "marker"))
    await slack.wait_acked()
    texts = [p.text for p in slack.posted if p.channel == CHANNEL]
    assert all(len(t) <= 4000 for t in texts)


async def test_neither_token_reaches_a_log_or_the_database(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    gateway = await paired(gateway_factory, client_factory, slack)
    slack.script("chat.postMessage", "500")
    await slack.user_says("hello", user=ALICE, channel=DM)
    await wait_for(lambda: replies(slack, DM, "hello"))
    await gateway.server.stop()
    for path in gateway.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert BOT_TOKEN.encode() not in data and APP_TOKEN.encode() not in data, path


async def test_replies_go_out_in_the_order_of_their_turns_when_one_is_retried(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    await paired(gateway_factory, client_factory, slack)
    slack.script("chat.postMessage", "500")  # the first reply waits out a backoff
    await slack.user_says("first question", user=ALICE, channel=DM)
    await slack.user_says("second question", user=ALICE, channel=DM)
    await wait_for(lambda: replies(slack, DM, "second question"))
    await wait_for(lambda: replies(slack, DM, "first question"))
    order = [p.text for p in slack.posted if p.method == "chat.postMessage" and p.channel == DM]
    answers = [t for t in order if "question" in t]
    assert ["first" in answers[0], "second" in answers[1]] == [True, True], answers
