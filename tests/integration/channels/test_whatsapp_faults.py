"""WhatsApp (Cloud API) when things go wrong: signatures, redelivery, outages, odd bodies."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.conftest import GatewayFactory
from tests.fakes.whatsapp_cloud import ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN, FakeWhatsApp
from tests.integration.channels.harness import (
    channel_gateway,
    channel_status,
    failure_notes,
    operator,
    outbound_rows,
    raw_post,
    wait_for,
)
from tests.integration.channels.test_whatsapp import (
    ALICE,
    paired,
    replies,
    whatsapp_gateway,
    whatsapp_table,
)
from tests.integration.conftest import Peer, PeerFactory


def _text_notification(text: str, wamid: str = "wamid.HBgLFORGED0001") -> bytes:
    message = {"from": ALICE, "id": wamid, "timestamp": "1700000000", "type": "text"}
    value = {"messaging_product": "whatsapp", "messages": [{**message, "text": {"body": text}}]}
    change = {"field": "messages", "value": value}
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
    return json.dumps(body).encode()


async def _failed_status(peer: Peer) -> dict[str, Any]:
    """Wait until the account is `failed`; return its `channels.status` entry."""

    async def failed() -> dict[str, Any] | None:
        status = await channel_status(peer, "whatsapp")
        return status if status["state"] == "failed" else None

    result: dict[str, Any] = await wait_for(failed)
    return result


async def test_a_post_with_a_wrong_or_missing_signature_gets_401_and_is_not_delivered(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    await whatsapp_gateway(gateway_factory, whatsapp, dm_policy="open")
    body = _text_notification("forged order")
    wrong = whatsapp.sign(body, secret="not-the-app-secret")
    assert await whatsapp.post(body, signature=wrong) == 401
    assert await whatsapp.post(body, signature=None) == 401
    assert await whatsapp.post(body, signature="sha1=" + wrong[7:]) == 401
    await whatsapp.user_says("marker", user=ALICE)
    await wait_for(lambda: replies(whatsapp, "marker"))
    assert replies(whatsapp, "forged order") == []


async def test_a_signature_that_is_not_ascii_gets_401_not_a_server_error(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    await whatsapp_gateway(gateway_factory, whatsapp, dm_policy="open")
    body = _text_notification("forged order")
    for signature in ("sha256=é".encode(), b"sha256=\xff\xfe", "sha256=ü".encode() * 20):
        headers = {"X-Hub-Signature-256": signature}
        assert await raw_post(whatsapp.webhook_url, body, headers) == 401
    await whatsapp.user_says("marker", user=ALICE)
    await wait_for(lambda: replies(whatsapp, "marker"))
    assert replies(whatsapp, "forged order") == []


async def test_a_redelivered_notification_is_answered_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    await paired(gateway_factory, client_factory, whatsapp)
    await whatsapp.user_says("only once please", user=ALICE)
    await wait_for(lambda: replies(whatsapp, "only once please"))
    again = await whatsapp.redeliver(whatsapp.deliveries[-1])
    assert again.statuses == [200]
    await whatsapp.user_says("marker", user=ALICE)
    await wait_for(lambda: replies(whatsapp, "marker"))
    assert len(replies(whatsapp, "only once please")) == 1


async def test_a_refused_access_token_fails_the_account_once_with_a_clear_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    table = whatsapp_table(whatsapp, access_token="EAAJrevoked-token-0000")
    gateway = await channel_gateway(gateway_factory, table)
    status = await _failed_status(await operator(client_factory, gateway))
    assert "code 190" in str(status["lastError"]) and "revoked-token" not in str(status)
    calls = len(whatsapp.calls)
    await asyncio.sleep(0.5)  # several restart delays of the fast test backoff
    assert len(whatsapp.calls) == calls


async def test_an_account_without_its_app_secret_fails_saying_where_to_put_it(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    table = whatsapp_table(whatsapp, app_secret=None)
    gateway = await channel_gateway(gateway_factory, table)
    status = await _failed_status(await operator(client_factory, gateway))
    assert "app secret" in str(status["lastError"]) and whatsapp.calls == []


async def test_graph_5xx_at_start_is_retried_with_backoff_until_connected(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    whatsapp.script("phone", "500", "500", "500")
    await whatsapp_gateway(gateway_factory, whatsapp, connected=False, dm_policy="open")
    await whatsapp.user_says("sent during the outage", user=ALICE, wait=False)
    await wait_for(lambda: replies(whatsapp, "sent during the outage"))
    assert whatsapp.calls.count("phone") >= 4
    assert [d.status for d in whatsapp.deliveries] == [200]
    assert whatsapp.deliveries[0].statuses[0] != 200  # Meta resent what was refused


async def test_graph_5xx_for_a_while_on_send_is_retried_and_delivered(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await paired(gateway_factory, client_factory, whatsapp)
    whatsapp.script("messages", "500", "500")
    await whatsapp.user_says("through the outage", user=ALICE)
    [reply] = await wait_for(lambda: replies(whatsapp, "through the outage"))
    # The reply's own record: it is written a moment after Graph answered the send.
    [row] = await wait_for(lambda: [r for r in outbound_rows(gateway) if reply.id in r.message_ids])
    assert row.state == "sent" and row.attempts == 3


async def test_a_429_on_send_is_waited_out_and_retried(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    await paired(gateway_factory, client_factory, whatsapp)
    whatsapp.script("messages", "throughput")
    await whatsapp.user_says("rate limited", user=ALICE)
    await wait_for(lambda: replies(whatsapp, "rate limited"))
    assert whatsapp.calls.count("messages") >= 3  # the code, the 429, the retry


async def test_a_reply_outside_the_24_hour_window_is_recorded_failed_without_retry(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await paired(gateway_factory, client_factory, whatsapp)
    sent_before = whatsapp.calls.count("messages")
    whatsapp.script("messages", "131047")
    await whatsapp.user_says("too late", user=ALICE)
    rows = await wait_for(lambda: [r for r in outbound_rows(gateway) if r.state == "failed"])
    assert rows[0].attempts == 1 and "131047" in str(rows[0].error)
    assert whatsapp.calls.count("messages") == sent_before + 1


async def test_a_reply_graph_keeps_refusing_is_recorded_failed_on_the_session(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await paired(gateway_factory, client_factory, whatsapp)
    peer = await operator(client_factory, gateway)
    whatsapp.script("messages", "500", "500", "500")
    await whatsapp.user_says("lost in transit", user=ALICE)
    key = f"agent:main:whatsapp:dm:{ALICE}"
    [text] = await wait_for(lambda: failure_notes(peer, key))
    assert "3 attempt" in text


async def test_unknown_and_odd_notifications_are_answered_200_and_skipped(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    await whatsapp_gateway(gateway_factory, whatsapp, dm_policy="open")
    message = {"from": ALICE, "id": "wamid.X1", "timestamp": "1700000000"}
    odd_values: list[dict[str, Any]] = [
        {"messages": [{**message, "type": "reaction", "reaction": {"emoji": "👍"}}]},
        {"messages": [{**message, "type": "sticker", "sticker": {"id": "1"}}]},
        {"messages": [{**message, "type": "text", "text": {"body": 42}}]},
        {"messages": [{"type": "text"}, "not an object"]},
        {"statuses": [{"status": "read"}]},
        {"some_future_key": [1, 2, 3]},
    ]
    for value in odd_values:
        assert (await whatsapp.notify(value)).statuses == [200]
    account_update = {"object": "whatsapp_business_account", "entry": [{"changes": [{}]}]}
    for body in (account_update, {"object": "page"}, {"entry": "x"}):
        assert await whatsapp.post(json.dumps(body).encode()) == 200
    await whatsapp.user_says("marker", user=ALICE)
    await wait_for(lambda: replies(whatsapp, "marker"))
    assert len(whatsapp.sent) == 1


async def test_signed_notifications_with_fields_of_the_wrong_shape_are_answered_200(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    await whatsapp_gateway(gateway_factory, whatsapp, dm_policy="open")
    text = {"type": "text", "text": {"body": "odd"}}
    odd_values: list[dict[str, Any]] = [
        # JSON's 1e999 reads as an infinite float.
        {"messages": [{"from": ALICE, "id": "wamid.INF", "timestamp": 1e999, **text}]},
        {"messages": [{"from": ALICE, "id": "wamid.NINF", "timestamp": -1e999, **text}]},
        {"messages": [{"from": ALICE, "id": "wamid.BIG", "timestamp": "9" * 30, **text}]},
        {"contacts": [{"wa_id": ALICE, "profile": "Alice"}]},
        {"contacts": [{"wa_id": ALICE, "profile": ["Alice"]}]},
    ]
    for value in odd_values:
        assert (await whatsapp.notify(value)).statuses == [200], value
    await whatsapp.user_says("marker", user=ALICE)
    await wait_for(lambda: replies(whatsapp, "marker"))


async def test_a_signed_body_that_is_not_a_json_object_gets_400(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    await whatsapp_gateway(gateway_factory, whatsapp, dm_policy="open")
    assert await whatsapp.post(b"\x00not json{") == 400
    assert await whatsapp.post(b"[1, 2]") == 400
    await whatsapp.user_says("still here", user=ALICE)
    await wait_for(lambda: replies(whatsapp, "still here"))


async def test_an_oversized_text_is_answered_in_chunks_and_an_oversized_body_is_refused(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    await whatsapp_gateway(gateway_factory, whatsapp, dm_policy="open")
    await whatsapp.user_says("y" * 50_000 + " marker", user=ALICE)
    await wait_for(lambda: replies(whatsapp, "marker"))
    assert all(len(s.text) <= 4096 for s in whatsapp.sent)
    huge = _text_notification("z" * (2 * 1024 * 1024))
    assert await whatsapp.post(huge) == 413
    await whatsapp.user_says("after the flood", user=ALICE)
    await wait_for(lambda: replies(whatsapp, "after the flood"))


async def test_no_secret_reaches_a_log_or_the_database(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await paired(gateway_factory, client_factory, whatsapp)
    whatsapp.script("messages", "500")
    await whatsapp.post(_text_notification("forged"), signature="sha256=00")
    await whatsapp.user_says("hello", user=ALICE)
    await wait_for(lambda: replies(whatsapp, "hello"))
    await gateway.server.stop()
    secrets = (ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN)
    for path in gateway.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not [s for s in secrets if s.encode() in data], path


async def test_a_media_download_failing_for_now_is_answered_503_and_resent_by_meta(
    gateway_factory: GatewayFactory, whatsapp: FakeWhatsApp
) -> None:
    gateway = await whatsapp_gateway(gateway_factory, whatsapp, dm_policy="open")
    whatsapp.script("download", "500")
    await whatsapp.user_sends_media("image", b"\xff\xd8 late bytes", "image/jpeg", caption="see")
    await wait_for(lambda: replies(whatsapp, "see"))
    assert whatsapp.deliveries[-1].statuses == [503, 200]
    [path] = list((gateway.home / "media" / "whatsapp" / "default").iterdir())
    assert path.read_bytes() == b"\xff\xd8 late bytes"
    assert len(replies(whatsapp, "see")) == 1
