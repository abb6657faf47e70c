"""`channels.status` and `channels.pairing.list` as OpenClaw's Control UI calls and reads them."""

from __future__ import annotations

from typing import Any

import pytest

from clawgate.client import GatewayCallError
from tests.conftest import GatewayFactory
from tests.fakes.telegram_api import FakeTelegram
from tests.integration.channels.harness import operator, wait_for
from tests.integration.channels.test_telegram import ALICE, telegram_gateway
from tests.integration.conftest import Peer, PeerFactory


async def test_channels_status_accepts_the_control_uis_probe_and_timeout(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    result = await peer.client.call("channels.status", {"probe": False, "timeoutMs": 8000})
    assert [e["channel"] for e in result["channels"]] == ["webchat"]


async def test_channels_status_names_each_channels_accounts_in_openclaws_maps(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram)
    peer = await operator(client_factory, gateway)
    result = await peer.client.call("channels.status", {"probe": True})
    assert result["channelOrder"] == ["webchat", "telegram"]
    assert result["channelLabels"]["telegram"] == "Telegram"
    assert [a["accountId"] for a in result["channelAccounts"]["telegram"]] == ["default"]
    assert result["channelDefaultAccountId"]["telegram"] == "default"


async def test_channels_status_with_a_channel_lists_only_that_channel(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    gateway = await telegram_gateway(gateway_factory, telegram)
    peer = await operator(client_factory, gateway)
    result = await peer.client.call("channels.status", {"channel": "telegram"})
    assert [e["channel"] for e in result["channels"]] == ["telegram"]
    assert result["channelOrder"] == ["telegram"]


async def test_channels_status_still_refuses_a_property_no_schema_defines(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call("channels.status", {"deep": True})
    assert caught.value.code == "INVALID_REQUEST"


async def test_pairing_list_without_channels_has_openclaws_empty_members(
    gateway_factory: GatewayFactory, client_factory: PeerFactory
) -> None:
    gateway = await gateway_factory()
    peer = await operator(client_factory, gateway)
    result = await peer.client.call("channels.pairing.list", {})
    assert (result["pending"], result["accounts"], result["requests"]) == ([], [], [])
    assert result["commandOwnerConfigured"] is False


async def alice_asked_for_a_code(
    factory: GatewayFactory, clients: PeerFactory, telegram: FakeTelegram
) -> tuple[Peer, dict[str, Any]]:
    """Start a Telegram gateway, have Alice ask for a code; return a peer and the listing."""
    gateway = await telegram_gateway(factory, telegram)
    peer = await operator(clients, gateway)
    telegram.user_says("hello", user_id=ALICE)
    await telegram.wait_sent()
    return peer, await wait_for(lambda: _with_requests(peer))


async def test_pairing_list_names_the_accounts_that_issue_codes_and_their_requests(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    _, result = await alice_asked_for_a_code(gateway_factory, client_factory, telegram)
    assert [(a["channel"], a["accountId"]) for a in result["accounts"]] == [("telegram", "default")]
    [request] = result["requests"]
    assert request["senderId"] == str(ALICE)
    assert request["requestId"] == result["pending"][0]["code"]


@pytest.mark.parametrize("narrowed", [{"channel": "irc"}, {"accountId": "work"}])
async def test_pairing_list_narrowed_to_another_channel_or_account_lists_nothing(
    gateway_factory: GatewayFactory,
    client_factory: PeerFactory,
    telegram: FakeTelegram,
    narrowed: dict[str, str],
) -> None:
    peer, _ = await alice_asked_for_a_code(gateway_factory, client_factory, telegram)
    result = await peer.client.call("channels.pairing.list", narrowed)
    assert (result["pending"], result["accounts"], result["requests"]) == ([], [], [])


async def _with_requests(peer: Peer) -> dict[str, Any] | None:
    result = await peer.client.call("channels.pairing.list", {})
    return result if result["requests"] else None


def ui_request(listing: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Return what the Control UI sends to approve or dismiss the listing's request."""
    [request] = listing["requests"]
    fields = ("channel", "accountId", "requestId")
    return {**{k: request[k] for k in fields}, **extra}


async def test_approve_by_the_uis_request_id_allows_the_sender(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    peer, listing = await alice_asked_for_a_code(gateway_factory, client_factory, telegram)
    params = ui_request(listing, notify=True, bootstrapCommandOwner=False)
    result = await peer.client.call("channels.pairing.approve", params)
    assert (result["requestId"], result["senderId"]) == (params["requestId"], str(ALICE))
    assert result["notification"] == "not-requested" and result["approved"] is True
    assert (await peer.client.call("channels.pairing.list", {}))["requests"] == []


async def test_dismiss_drops_the_code_without_allowing_the_sender(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    peer, listing = await alice_asked_for_a_code(gateway_factory, client_factory, telegram)
    result = await peer.client.call("channels.pairing.dismiss", ui_request(listing))
    assert result["approved"] is False and result["senderId"] == str(ALICE)
    assert (await peer.client.call("channels.pairing.list", {}))["requests"] == []


async def test_approve_on_another_account_is_pairing_code_not_found(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    peer, listing = await alice_asked_for_a_code(gateway_factory, client_factory, telegram)
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call("channels.pairing.approve", ui_request(listing, accountId="work"))
    assert caught.value.details == {"code": "PAIRING_CODE_NOT_FOUND"}


async def test_approve_with_both_code_and_request_id_is_invalid(
    gateway_factory: GatewayFactory, client_factory: PeerFactory, telegram: FakeTelegram
) -> None:
    peer, listing = await alice_asked_for_a_code(gateway_factory, client_factory, telegram)
    params = ui_request(listing, code=listing["pending"][0]["code"])
    with pytest.raises(GatewayCallError) as caught:
        await peer.client.call("channels.pairing.approve", params)
    assert caught.value.code == "INVALID_REQUEST"
