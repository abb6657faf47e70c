"""Streaming edits (`stream = "edit"`): a reply posted at once, then edited in place.

Over the Slack (`chat.update`) and Telegram (`editMessageText`) stand-ins, with the echo
agent writing one word at a time so the reply is seen growing.
"""

from __future__ import annotations

import json
from typing import Any

from clawgate.config import AgentSection
from clawgate.store.channels_repo import load_outbound
from tests.conftest import GatewayFactory, RunningGateway
from tests.fakes.slack_api import FakeSlack, Posted
from tests.fakes.telegram_api import FakeTelegram, Sent
from tests.integration.channels.harness import channel_gateway, operator, wait_for
from tests.integration.channels.test_slack import ALICE, DM, slack_table
from tests.integration.channels.test_telegram import telegram_table
from tests.integration.conftest import PeerFactory

#: The echo agent writes one word each this many ms: a reply of ~20 words takes ~2 s.
SLOW_MS = 100
WORDS = " ".join(f"word{n:02d}" for n in range(16)) + " END"
TG_ALICE = 4242


def slow_agent(delay_ms: int = SLOW_MS) -> AgentSection:
    return AgentSection(echo_delay_ms=delay_ms)


async def slack_streaming(
    factory: GatewayFactory, fake: FakeSlack, delay_ms: int = SLOW_MS, **overrides: Any
) -> RunningGateway:
    table = slack_table(fake, **{"stream": "edit", "dm_policy": "open", **overrides})
    gateway = await channel_gateway(factory, table, agent=slow_agent(delay_ms))
    await fake.wait_connections(1)
    return gateway


def slack_dm(fake: FakeSlack, method: str) -> list[Posted]:
    return [p for p in fake.posted if p.method == method and p.channel == DM]


def final_slack_text(fake: FakeSlack) -> str | None:
    """The reply's text once its last edit (holding the end delimiter) was made."""
    shown = [p for p in fake.posted if p.channel == DM]
    return shown[-1].text if shown and "<<<END" in shown[-1].text else None


async def assistant_text(clients: PeerFactory, gateway: RunningGateway, key: str) -> str:
    peer = await operator(clients, gateway)
    history = await peer.client.call("chat.history", {"sessionKey": key})
    [text] = [m["content"][0]["text"] for m in history["messages"] if m["role"] == "assistant"]
    return str(text)


async def test_a_streamed_slack_reply_is_posted_once_and_edited_to_its_whole_text(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, slack: FakeSlack
) -> None:
    gateway = await slack_streaming(gateway_factory, slack)
    await slack.user_says(WORDS, user=ALICE, channel=DM)
    final = await wait_for(lambda: final_slack_text(slack))
    [post] = slack_dm(slack, "chat.postMessage")
    edits = slack_dm(slack, "chat.update")
    assert "END" not in post.text and edits and all(e.ts == post.ts for e in edits)
    assert WORDS in final
    transcript = await assistant_text(client_factory, gateway, f"agent:main:slack:dm:{ALICE}")
    assert final == transcript.strip("\n")


async def test_a_streamed_reply_past_4000_characters_continues_in_a_new_message(
    gateway_factory: GatewayFactory, slack: FakeSlack
) -> None:
    await slack_streaming(gateway_factory, slack, delay_ms=0)
    words = " ".join(f"w{n:04d}" + "x" * 95 for n in range(90))
    await slack.user_says(words + " END", user=ALICE, channel=DM)
    await wait_for(lambda: final_slack_text(slack))
    posts = slack_dm(slack, "chat.postMessage")
    latest = {p.ts: p.text for p in slack.posted if p.channel == DM}  # each message's last text
    assert len(posts) >= 3 and all(len(t) <= 4000 for t in latest.values())
    numbers = [w for w in " ".join(latest[p.ts] for p in posts).split() if w.startswith("w")]
    assert numbers == sorted(numbers) and len(numbers) == 90


async def test_a_streamed_reply_is_recorded_once_with_every_message_it_posted(
    gateway_factory: GatewayFactory, slack: FakeSlack
) -> None:
    gateway = await slack_streaming(gateway_factory, slack, delay_ms=0)
    words = " ".join(f"w{n:04d}" + "x" * 95 for n in range(60))
    await slack.user_says(words + " END", user=ALICE, channel=DM)
    await wait_for(lambda: final_slack_text(slack))
    posts = slack_dm(slack, "chat.postMessage")
    store = gateway.server.store
    assert store is not None
    [row] = await wait_for(lambda: store.read(load_outbound))
    assert (row.channel, row.chat_id, row.state) == ("slack", DM, "sent")
    assert json.loads(row.message_ids) == [p.ts for p in posts] and len(posts) >= 2


async def test_a_failed_slack_edit_falls_back_to_posting_the_final_text(
    gateway_factory: GatewayFactory, slack: FakeSlack
) -> None:
    await slack_streaming(gateway_factory, slack)
    slack.script("chat.update", "message_not_found")
    await slack.user_says(WORDS, user=ALICE, channel=DM)
    posts = await wait_for(
        lambda: [p for p in slack_dm(slack, "chat.postMessage") if "<<<END" in p.text]
    )
    assert WORDS in posts[-1].text
    assert len(slack_dm(slack, "chat.postMessage")) == 2  # the partial post, then the whole


async def test_with_stream_off_a_slack_reply_is_one_message_and_no_edit(
    gateway_factory: GatewayFactory, slack: FakeSlack
) -> None:
    await slack_streaming(gateway_factory, slack, stream="off")
    await slack.user_says(WORDS, user=ALICE, channel=DM)
    [post] = await wait_for(lambda: slack_dm(slack, "chat.postMessage"))
    assert WORDS in post.text and slack_dm(slack, "chat.update") == []


# -- Telegram ---------------------------------------------------------------------------


async def telegram_streaming(factory: GatewayFactory, fake: FakeTelegram) -> RunningGateway:
    table = telegram_table(fake, stream="edit", dm_policy="open")
    return await channel_gateway(factory, table, agent=slow_agent())


def telegram_dm(fake: FakeTelegram, method: str) -> list[Sent]:
    return [s for s in fake.sent if s.method == method and s.chat_id == str(TG_ALICE)]


def final_telegram_text(fake: FakeTelegram) -> str | None:
    shown = [s for s in fake.sent if s.chat_id == str(TG_ALICE) and s.method != "sendChatAction"]
    return shown[-1].text if shown and "<<<END" in shown[-1].text else None


async def test_a_streamed_telegram_reply_is_sent_once_and_edited_to_its_whole_text(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_streaming(gateway_factory, telegram)
    telegram.user_says(WORDS, user_id=TG_ALICE)
    final = await wait_for(lambda: final_telegram_text(telegram))
    [sent] = telegram_dm(telegram, "sendMessage")
    edits = telegram_dm(telegram, "editMessageText")
    assert "END" not in sent.text and edits
    assert all(e.message_id == sent.message_id for e in edits)
    transcript = await assistant_text(client_factory, gateway, f"agent:main:telegram:dm:{TG_ALICE}")
    assert WORDS in final and final == transcript.strip("\n")


async def test_a_telegram_edit_that_keeps_failing_falls_back_to_sending_the_final_text(
    gateway_factory: GatewayFactory, telegram: FakeTelegram
) -> None:
    await telegram_streaming(gateway_factory, telegram)
    telegram.script("editMessageText", "500", "500", "500")
    telegram.user_says(WORDS, user_id=TG_ALICE)
    sent = await wait_for(
        lambda: [s for s in telegram_dm(telegram, "sendMessage") if "<<<END" in s.text]
    )
    assert WORDS in sent[-1].text and len(telegram_dm(telegram, "sendMessage")) == 2
