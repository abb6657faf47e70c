"""Signal when things go wrong: redelivery, cut streams, 5xx, refused sends, odd events."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import GatewayFactory
from tests.fakes.signal_cli import GROUP_ID, FakeSignalCli
from tests.integration.channels.harness import (
    channel_gateway,
    channel_status,
    failure_notes,
    operator,
    wait_for,
)
from tests.integration.channels.test_signal import (
    ALICE,
    BOB,
    paired,
    replies,
    signal_gateway,
    signal_table,
)
from tests.integration.conftest import PeerFactory


async def test_a_redelivered_envelope_is_answered_once(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    await paired(gateway_factory, client_factory, signal_cli)
    envelope = await signal_cli.user_says("only once please", number=ALICE)
    await wait_for(lambda: replies(signal_cli, ALICE, "only once please"))
    await signal_cli.push(envelope)
    await signal_cli.user_says("marker", number=ALICE)
    await wait_for(lambda: replies(signal_cli, ALICE, "marker"))
    assert len(replies(signal_cli, ALICE, "only once please")) == 1


async def test_a_cut_event_stream_reconnects_and_what_came_meanwhile_is_answered(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    await paired(gateway_factory, client_factory, signal_cli)
    await signal_cli.drop()
    await signal_cli.user_says("while you were away", number=ALICE)
    await signal_cli.wait_streams(2)
    await wait_for(lambda: replies(signal_cli, ALICE, "while you were away"))


async def test_a_reconnect_asks_for_the_events_after_the_last_one_delivered(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    await paired(gateway_factory, client_factory, signal_cli)
    await signal_cli.user_says("first", number=ALICE)
    await wait_for(lambda: replies(signal_cli, ALICE, "first"))
    await signal_cli.drop()
    await signal_cli.wait_streams(2)
    await signal_cli.user_says("second", number=ALICE)
    await wait_for(lambda: replies(signal_cli, ALICE, "second"))
    assert signal_cli.last_event_ids[-1] is not None
    assert len(replies(signal_cli, ALICE, "first")) == 1


async def test_a_daemon_answering_503_for_a_while_loses_nothing(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    await paired(gateway_factory, client_factory, signal_cli)
    signal_cli.fail_for(4)
    await signal_cli.drop()
    await signal_cli.user_says("through the outage", number=ALICE)
    await wait_for(lambda: replies(signal_cli, ALICE, "through the outage"), timeout=20)
    assert signal_cli.event_requests == 2  # the four 503s were the restarts' listGroups
    assert len(replies(signal_cli, ALICE, "through the outage")) == 1


async def test_an_account_signal_cli_does_not_hold_fails_once_with_a_clear_error(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    signal_cli.unregister()
    gateway = await channel_gateway(gateway_factory, signal_table(signal_cli))
    peer = await operator(client_factory, gateway)

    async def failed() -> dict[str, Any] | None:
        status = await channel_status(peer, "signal")
        return status if status["state"] == "failed" else None

    status = await wait_for(failed)
    assert "does not hold the account" in status["lastError"]
    assert "signal-cli link" in status["lastError"]
    calls = len(signal_cli.calls)
    await asyncio.sleep(0.5)  # several restart delays of the fast test backoff
    assert len(signal_cli.calls) == calls


async def test_a_reply_to_an_unregistered_number_is_recorded_failed_without_retries(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    gateway = await signal_gateway(gateway_factory, signal_cli)
    peer = await operator(client_factory, gateway)
    params = {"to": "+15559999999", "channel": "signal", "message": "hi", "idempotencyKey": "u"}
    error = None
    try:
        await peer.client.call("send", params)
    except Exception as exc:  # the gateway's RequestError, as the SDK raises it
        error = exc
    assert error is not None and "not registered with Signal" in str(error)
    assert signal_cli.calls.count("send") == 1


async def test_a_reply_signal_cli_keeps_refusing_is_recorded_failed_on_the_session(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    gateway = await paired(gateway_factory, client_factory, signal_cli)
    peer = await operator(client_factory, gateway)
    signal_cli.fail_for(3, method="send")
    await signal_cli.user_says("lost in transit", number=ALICE)
    key = f"agent:main:signal:dm:{ALICE}"
    [text] = await wait_for(lambda: failure_notes(peer, key))
    assert "3 attempt" in text
    status = await channel_status(peer, "signal")
    assert "503" in str(status["lastError"])


async def test_odd_unknown_and_oversized_events_are_skipped(
    gateway_factory: GatewayFactory, signal_cli: FakeSignalCli
) -> None:
    await signal_gateway(gateway_factory, signal_cli, groups=[GROUP_ID])
    await signal_cli.push({"source": BOB, "timestamp": 1, "receiptMessage": {"isRead": True}})
    await signal_cli.push({"source": BOB, "timestamp": 2, "typingMessage": {"action": "STARTED"}})
    await signal_cli.push({"source": 42, "dataMessage": "not an object"})
    await signal_cli.push(["not", "an", "envelope"])
    await signal_cli.push(
        {"source": BOB, "timestamp": 3, "dataMessage": {"message": "y" * 2_000_000}}
    )
    await signal_cli.push_raw("event:receive\ndata:{not json\n\n")
    await signal_cli.push_raw("event:somethingNew\ndata:{}\n\n")
    await signal_cli.user_says("marker", number=BOB, group_id=GROUP_ID, mention_bot=True)
    await wait_for(lambda: replies(signal_cli, GROUP_ID, "marker"))
    assert [s.message for s in signal_cli.sent if s.method == "send"] == [
        s.message for s in replies(signal_cli, GROUP_ID, "marker")
    ]


async def _answered_without_a_restart(
    gateway: Any, clients: PeerFactory, signal_cli: FakeSignalCli, text: str
) -> None:
    """Send `text` from Alice; wait for its answer; the account must never have restarted."""
    await signal_cli.user_says(text, number=ALICE)
    await wait_for(lambda: replies(signal_cli, ALICE, text))
    status = await channel_status(await operator(clients, gateway), "signal")
    assert (status["reconnects"], signal_cli.event_requests) == (0, 1)


async def test_a_deeply_nested_event_is_skipped_without_a_restart(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    gateway = await signal_gateway(gateway_factory, signal_cli, dm_policy="open")
    await signal_cli.push_raw("event:receive\ndata:" + "[" * 200_000 + "\n\n")
    await signal_cli.push({"source": ALICE, "timestamp": 1, "dataMessage": [[[[[[[[[[]]]]]]]]]]})
    await _answered_without_a_restart(gateway, client_factory, signal_cli, "marker")


async def test_an_envelope_timestamp_past_64_bits_is_skipped_without_a_restart(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    gateway = await signal_gateway(gateway_factory, signal_cli, dm_policy="open")
    big = {"source": ALICE, "timestamp": 10**20, "dataMessage": {"message": "far future"}}
    await signal_cli.push(big)
    await _answered_without_a_restart(gateway, client_factory, signal_cli, "marker")


async def test_an_attachment_name_with_a_nul_byte_is_still_copied_without_a_restart(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    signal_cli: FakeSignalCli,
    tmp_path: Path,
) -> None:
    store = tmp_path / "signal-cli-attachments"
    store.mkdir()
    (store / "AbCdEf123").write_bytes(b"%PDF fake")
    gateway = await signal_gateway(gateway_factory, signal_cli, dm_policy="open", attachments=store)
    # The file name is the sender's (their client sets it), so it may hold anything.
    for n, name in enumerate(("a.\x00pdf", "a.\ud800pdf")):
        item = {"id": "AbCdEf123", "contentType": "application/pdf", "filename": name}
        await signal_cli.user_says(f"odd name {n}", number=ALICE, attachments=[item])
        await wait_for(lambda n=n: replies(signal_cli, ALICE, f"odd name {n}"))
    await _answered_without_a_restart(gateway, client_factory, signal_cli, "marker")
    copied = [p for p in (gateway.home / "media").rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in copied] == [b"%PDF fake"] * 2


async def test_a_message_from_the_account_itself_is_not_answered(
    gateway_factory: GatewayFactory, signal_cli: FakeSignalCli
) -> None:
    await signal_gateway(gateway_factory, signal_cli, dm_policy="open")
    await signal_cli.user_says("talking to myself", number=signal_cli.account)
    await signal_cli.user_says("marker", number=ALICE)
    await wait_for(lambda: replies(signal_cli, ALICE, "marker"))
    assert replies(signal_cli, signal_cli.account, "myself") == []


async def test_metrics_count_signal_traffic_and_the_reconnects(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, signal_cli: FakeSignalCli
) -> None:
    gateway = await paired(gateway_factory, client_factory, signal_cli)
    await signal_cli.user_says("count me", number=ALICE)
    await wait_for(lambda: replies(signal_cli, ALICE, "count me"))
    await signal_cli.drop()
    await signal_cli.wait_streams(2)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.http_url}/metrics") as response,
    ):
        metrics = await response.text()
    assert 'clawgate_channel_inbound_total{account="default",channel="signal"} 2.0' in metrics
    assert 'clawgate_channel_outbound_total{account="default",channel="signal"}' in metrics
    assert 'clawgate_channel_reconnects_total{account="default",channel="signal"}' in metrics
