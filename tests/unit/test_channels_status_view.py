"""OpenClaw's views of channel status and pairing, built from clawgate's entries."""

from __future__ import annotations

from typing import Any

from clawgate.channels.status_view import channel_label, openclaw_pairing, openclaw_status


def entry(channel: str, account: str, **fields: Any) -> dict[str, Any]:
    """Return a clawgate `channels.status` entry."""
    return {
        "channel": channel,
        "accountId": account,
        "enabled": True,
        "running": True,
        "connected": True,
        "state": "connected",
        "lastInboundAt": None,
        "lastOutboundAt": None,
        "lastError": None,
        "reconnects": 0,
        **fields,
    }


def test_channels_are_ordered_as_first_listed_with_their_labels() -> None:
    view = openclaw_status([entry("webchat", "default"), entry("irc", "a"), entry("irc", "b")])
    assert view["channelOrder"] == ["webchat", "irc"]
    assert view["channelLabels"] == {"webchat": "WebChat", "irc": "IRC"}


def test_each_channels_accounts_are_listed_under_it_in_order() -> None:
    view = openclaw_status([entry("irc", "a"), entry("irc", "b", connected=False)])
    assert [a["accountId"] for a in view["channelAccounts"]["irc"]] == ["a", "b"]
    assert view["channelAccounts"]["irc"][1]["connected"] is False


def test_an_accounts_state_and_reconnects_become_health_state_and_attempts() -> None:
    view = openclaw_status([entry("telegram", "default", state="backoff", reconnects=3)])
    [account] = view["channelAccounts"]["telegram"]
    assert (account["healthState"], account["reconnectAttempts"]) == ("backoff", 3)


def test_the_default_account_is_default_when_present_else_the_first() -> None:
    view = openclaw_status([entry("irc", "x"), entry("irc", "default"), entry("matrix", "m")])
    assert view["channelDefaultAccountId"] == {"irc": "default", "matrix": "m"}


def test_an_unknown_channel_is_labelled_by_its_id_capitalised() -> None:
    assert channel_label("mastodon") == "Mastodon"


def test_no_entries_give_empty_maps() -> None:
    assert openclaw_status([]) == {
        "channelOrder": [],
        "channelLabels": {},
        "channelAccounts": {},
        "channelDefaultAccountId": {},
    }


def test_a_pending_code_becomes_a_request_with_iso_times() -> None:
    pending = {
        "channel": "telegram",
        "accountId": "default",
        "sender": "4242",
        "senderName": "Alice",
        "code": "ABCD2345",
        "createdAt": 0,
        "expiresAt": 3_600_000,
    }
    view = openclaw_pairing([], [pending], pending_per_account=3, ttl_ms=3_600_000)
    [request] = view["requests"]
    assert request["requestId"] == "ABCD2345" and request["senderId"] == "4242"
    assert request["createdAt"] == "1970-01-01T00:00:00.000+00:00"
    assert request["expiresAt"] == "1970-01-01T01:00:00.000+00:00"
    assert request["metadata"] == {"name": "Alice"}


def test_pairing_accounts_and_limits_are_listed() -> None:
    view = openclaw_pairing([("irc", "a")], [], pending_per_account=3, ttl_ms=60_000)
    assert view["accounts"] == [
        {"channel": "irc", "channelLabel": "IRC", "accountId": "a", "notifySupported": False}
    ]
    assert view["limits"] == {"pendingPerAccount": 3, "ttlMs": 60_000}
    assert view["commandOwnerConfigured"] is False
