"""iMessage when things go wrong: redelivery, bad tokens and passwords, outages, odd bodies."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import GatewayFactory
from tests.fakes.bluebubbles import PASSWORD, FakeBlueBubbles
from tests.integration.channels.harness import (
    channel_gateway,
    channel_status,
    failure_notes,
    operator,
    outbound_rows,
    wait_for,
)
from tests.integration.channels.test_imessage import (
    ALICE,
    DM,
    GROUP,
    imessage_gateway,
    imessage_table,
    paired,
    replies,
)
from tests.integration.conftest import Peer, PeerFactory


async def test_a_redelivered_webhook_is_answered_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await paired(gateway_factory, client_factory, bluebubbles)
    await bluebubbles.user_says("only once please", sender=ALICE)
    await wait_for(lambda: replies(bluebubbles, DM, "only once please"))
    event = {"type": "new-message", "data": bluebubbles.history[-2]}
    assert event["data"]["text"] == "only once please"
    assert await bluebubbles.emit(event) == [200]
    await bluebubbles.user_says("marker", sender=ALICE)
    await wait_for(lambda: replies(bluebubbles, DM, "marker"))
    assert len(replies(bluebubbles, DM, "only once please")) == 1


async def test_a_webhook_without_the_right_token_gets_401_and_does_nothing(
    gateway_factory: GatewayFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await imessage_gateway(gateway_factory, bluebubbles, dm_policy="open")
    [url] = bluebubbles.webhook_urls()
    base = url.split("?")[0]
    event = {"type": "new-message", "data": bluebubbles.message("forged", sender=ALICE)}
    assert await bluebubbles.post(base, event) == 401
    assert await bluebubbles.post(f"{base}?token=guessed", event) == 401
    assert await bluebubbles.post(f"{base}?password={PASSWORD}", event) == 401
    await bluebubbles.user_says("marker", sender=ALICE)
    await wait_for(lambda: replies(bluebubbles, DM, "marker"))
    assert [s for s in bluebubbles.sent if "forged" in s.text] == []


async def failed_status(peer: Peer) -> dict[str, object]:
    """Wait until the iMessage account is `failed`; return its `channels.status` entry."""

    async def failed() -> dict[str, object] | None:
        status = await channel_status(peer, "imessage")
        return status if status["state"] == "failed" else None

    return await wait_for(failed)


async def test_a_refused_password_fails_the_account_once_with_a_clear_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    table = imessage_table(bluebubbles, password="not-the-password")
    gateway = await channel_gateway(gateway_factory, table)
    peer = await operator(client_factory, gateway)
    status = await failed_status(peer)
    assert "refused" in str(status["lastError"]) and "401" in str(status["lastError"])
    assert "not-the-password" not in json.dumps(status)
    await asyncio.sleep(0.5)  # ten restarts' worth of the test backoff: none may come
    assert bluebubbles.requests == ["ping"] and bluebubbles.webhooks == {}


async def test_a_missing_webhook_url_fails_the_account_saying_what_to_set(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    table = imessage_table(bluebubbles, webhook_url=None)
    gateway = await channel_gateway(gateway_factory, table)
    status = await failed_status(await operator(client_factory, gateway))
    assert "webhook_url" in str(status["lastError"])
    assert bluebubbles.requests == []


async def test_a_reply_that_meets_5xx_for_a_while_is_retried_and_delivered_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await paired(gateway_factory, client_factory, bluebubbles)
    bluebubbles.script("message/text", 500, 503)
    await bluebubbles.user_says("through the storm", sender=ALICE)
    [reply] = await wait_for(lambda: replies(bluebubbles, DM, "through the storm"))
    assert reply.chat_guid == DM


async def test_a_reply_the_server_keeps_refusing_is_recorded_failed_on_the_session(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    gateway = await paired(gateway_factory, client_factory, bluebubbles)
    peer = await operator(client_factory, gateway)
    bluebubbles.script("message/text", 500, 500, 500)
    await bluebubbles.user_says("lost in transit", sender=ALICE)
    key = f"agent:main:imessage:dm:{ALICE}"
    [text] = await wait_for(lambda: failure_notes(peer, key))
    assert "3 attempt" in text
    status = await channel_status(peer, "imessage")
    assert "500" in str(status["lastError"])


async def test_a_reply_messages_gives_up_on_later_is_recorded_failed(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    gateway = await imessage_gateway(gateway_factory, bluebubbles, dm_policy="open")
    await bluebubbles.user_says("answer me", sender=ALICE)
    await bluebubbles.user_says("and me", sender=ALICE)
    await wait_for(lambda: replies(bluebubbles, DM, "and me"))
    guids = {
        text: next(m["guid"] for m in bluebubbles.history if m["isFromMe"] and text in m["text"])
        for text in ("answer me", "and me")
    }
    await wait_for(lambda: len(outbound_rows(gateway)) == 2)
    # Messages reports one as `updated-message`, the other as `message-send-error`.
    assert await bluebubbles.fail_delivery(guids["answer me"], 22) == [200]
    assert await bluebubbles.fail_delivery(guids["and me"], 4, "message-send-error") == [200]
    failed = {row.error for row in outbound_rows(gateway) if row.state == "failed"}
    assert failed == {
        "Messages did not deliver it (error 22)",
        "Messages did not deliver it (error 4)",
    }
    status = await channel_status(await operator(client_factory, gateway), "imessage")
    assert "error 4" in str(status["lastError"])


async def test_a_failure_of_a_message_the_gateway_did_not_send_is_not_its_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    gateway = await imessage_gateway(gateway_factory, bluebubbles)
    own = bluebubbles.message("typed on the Mac", chat=DM, from_me=True)
    bluebubbles.history.append(own)
    assert await bluebubbles.fail_delivery(own["guid"], 22) == [200]
    status = await channel_status(await operator(client_factory, gateway), "imessage")
    assert status["lastError"] is None and outbound_rows(gateway) == []


async def test_an_outage_reconnects_and_what_came_meanwhile_is_answered_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await paired(gateway_factory, client_factory, bluebubbles, ping_interval_s=0.1)
    first = set(bluebubbles.webhooks)
    bluebubbles.unreachable = True  # BlueBubbles cannot POST, and never retries
    await bluebubbles.user_says("while you were away", sender=ALICE)
    bluebubbles.unreachable = False
    bluebubbles.script("ping", 503, 503, 503)  # the server answers 5xx for a while
    [reply] = await wait_for(lambda: replies(bluebubbles, DM, "while you were away"))
    assert reply.chat_guid == DM
    await wait_for(lambda: set(bluebubbles.webhooks) - first)
    assert len(bluebubbles.webhooks) == 1  # the old registration was replaced
    await bluebubbles.user_says("marker", sender=ALICE)
    await wait_for(lambda: replies(bluebubbles, DM, "marker"))
    assert len(replies(bluebubbles, DM, "while you were away")) == 1


async def test_a_gateway_restart_answers_what_came_while_down_and_nothing_twice(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    gateway = await paired(gateway_factory, client_factory, bluebubbles)
    await bluebubbles.user_says("before the restart", sender=ALICE)
    await wait_for(lambda: replies(bluebubbles, DM, "before the restart"))
    await gateway.server.stop()
    await bluebubbles.user_says("while down", sender=ALICE)  # the POST finds no gateway
    assert bluebubbles.deliveries[-1] == 0
    await gateway.restart()  # the catch-up overlaps the answered messages: dedupe drops them
    await wait_for(lambda: replies(bluebubbles, DM, "while down"))
    await bluebubbles.user_says("marker", sender=ALICE)
    await wait_for(lambda: replies(bluebubbles, DM, "marker"))
    assert len(replies(bluebubbles, DM, "before the restart")) == 1
    assert len(replies(bluebubbles, DM, "while down")) == 1
    assert len(replies(bluebubbles, DM, "Pairing code:")) == 1


async def test_history_from_before_the_first_start_is_not_answered(
    gateway_factory: GatewayFactory, bluebubbles: FakeBlueBubbles
) -> None:
    bluebubbles.history.append(bluebubbles.message("an old message", sender=ALICE))
    await imessage_gateway(gateway_factory, bluebubbles, dm_policy="open")
    await bluebubbles.user_says("marker", sender=ALICE)
    await wait_for(lambda: replies(bluebubbles, DM, "marker"))
    assert replies(bluebubbles, DM, "an old message") == []


async def test_odd_unknown_and_oversized_bodies_are_refused_or_skipped(
    gateway_factory: GatewayFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await imessage_gateway(gateway_factory, bluebubbles, dm_policy="open", groups=[GROUP])
    [url] = bluebubbles.webhook_urls()
    post = bluebubbles.post
    assert await post(url, None, raw=b"{not json") == 400
    assert await post(url, [1, 2, 3]) == 400
    assert await post(url, {"type": "new-message", "data": "text"}) == 400
    assert await post(url, {"type": "typing-indicator", "data": {"display": True}}) == 200
    assert await post(url, {"type": "some-future-event", "data": {"x": [1]}}) == 200
    assert await post(url, {"type": "new-message", "data": {"guid": 42, "text": None}}) == 200
    assert await post(url, {"type": "new-message", "data": {"pad": "x" * 600_000}}) == 413
    assert await post(url, None, raw=b"x" * 3_000_000) == 413
    await bluebubbles.user_says("claw " + "y" * 50_000 + " marker", sender=ALICE, chat=GROUP)
    await wait_for(lambda: replies(bluebubbles, GROUP, "marker"))
    texts = [s.text for s in bluebubbles.sent if s.chat_guid == GROUP]
    assert all(len(t) <= 4000 for t in texts)


async def test_an_attachment_over_the_download_limit_is_not_fetched_and_the_text_still_goes(
    gateway_factory: GatewayFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await imessage_gateway(gateway_factory, bluebubbles, dm_policy="open")
    video = ("movie.mov", "video/quicktime", b"not really 30 MiB")
    message = bluebubbles.message("a huge video", sender=ALICE, attachments=(video,))
    message["attachments"][0]["totalBytes"] = 30 * 1024 * 1024
    assert await bluebubbles.emit({"type": "new-message", "data": message}) == [200]
    await wait_for(lambda: replies(bluebubbles, DM, "a huge video"))
    assert [r for r in bluebubbles.requests if r.startswith("attachment/")] == []


async def test_the_password_reaches_no_log_or_the_database(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, bluebubbles: FakeBlueBubbles
) -> None:
    gateway = await paired(gateway_factory, client_factory, bluebubbles)
    bluebubbles.script("message/text", 500)
    await bluebubbles.user_says("hello", sender=ALICE)
    await wait_for(lambda: replies(bluebubbles, DM, "hello"))
    await gateway.server.stop()
    for path in gateway.home.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


async def test_a_message_from_me_is_not_answered(
    gateway_factory: GatewayFactory, bluebubbles: FakeBlueBubbles
) -> None:
    await imessage_gateway(gateway_factory, bluebubbles, dm_policy="open")
    await bluebubbles.user_says("said by me", sender=ALICE, from_me=True)
    await bluebubbles.user_says("marker", sender=ALICE)
    await wait_for(lambda: replies(bluebubbles, DM, "marker"))
    assert replies(bluebubbles, DM, "said by me") == []
