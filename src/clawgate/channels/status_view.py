"""OpenClaw's views of channel status and pairing, built from clawgate's own entries (pure).

OpenClaw 2026.9.6's Control UI reads `channels.status` as maps keyed by channel
(`channelOrder`, `channelLabels`, `channelAccounts`, `channelDefaultAccountId`) and
`channels.pairing.list` as `{accounts, requests, commandOwnerConfigured, limits}` with ISO
times. clawgate's answers keep their own members (`channels` list, `pending` list: the CLI
and the spec read them) and gain these, derived here without I/O or clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["channel_label", "openclaw_pairing", "openclaw_status"]

_LABELS: Final = {
    "webchat": "WebChat",
    "telegram": "Telegram",
    "irc": "IRC",
    "matrix": "Matrix",
    "discord": "Discord",
    "slack": "Slack",
    "whatsapp": "WhatsApp",
    "signal": "Signal",
    "imessage": "iMessage",
}


def channel_label(channel: str) -> str:
    """Return the name a person reads for a channel id."""
    return _LABELS.get(channel) or channel.capitalize()


def _account(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Return OpenClaw's ChannelAccountSnapshot of one clawgate status entry."""
    snapshot: dict[str, Any] = {
        "accountId": entry["accountId"],
        "enabled": entry["enabled"],
        "configured": True,
        "running": entry["running"],
        "connected": entry["connected"],
        "linked": entry["connected"],
        "healthState": entry["state"],
        "reconnectAttempts": entry["reconnects"],
        "lastInboundAt": entry["lastInboundAt"],
        "lastOutboundAt": entry["lastOutboundAt"],
        "lastError": entry["lastError"],
    }
    if "mode" in entry:
        snapshot["mode"] = entry["mode"]
    return snapshot


def openclaw_status(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return the members OpenClaw's `channels.status` result adds to clawgate's.

    Args:
        entries: clawgate's status entries (`channel`, `accountId`, `state`, ...), in order.

    Returns:
        `channelOrder` (first appearance), `channelLabels`, `channelAccounts` (per channel,
        in order) and `channelDefaultAccountId` (`default` when the channel has it, else
        its first account).
    """
    accounts: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        accounts.setdefault(entry["channel"], []).append(_account(entry))
    defaults = {
        channel: next(
            (a["accountId"] for a in rows if a["accountId"] == "default"), rows[0]["accountId"]
        )
        for channel, rows in accounts.items()
    }
    return {
        "channelOrder": list(accounts),
        "channelLabels": {channel: channel_label(channel) for channel in accounts},
        "channelAccounts": accounts,
        "channelDefaultAccountId": defaults,
    }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def openclaw_pairing(
    accounts: Iterable[tuple[str, str]],
    pending: Iterable[Mapping[str, Any]],
    *,
    pending_per_account: int,
    ttl_ms: int,
) -> dict[str, Any]:
    """Return the members OpenClaw's `channels.pairing.list` result adds to clawgate's.

    Args:
        accounts: (channel, account id) of each account under `dm_policy = "pairing"`.
        pending: clawgate's pending entries (`channel`, `accountId`, `sender`, `code`, ...).
        pending_per_account: the most open codes one account keeps.
        ttl_ms: how long a code stays valid.

    Returns:
        `accounts`, `requests` (the code is the request id; times as ISO strings),
        `commandOwnerConfigured` (clawgate has no command owners: false) and `limits`.
    """
    requests = []
    for entry in pending:
        request: dict[str, Any] = {
            "requestId": entry["code"],
            "channel": entry["channel"],
            "channelLabel": channel_label(entry["channel"]),
            "accountId": entry["accountId"],
            "senderId": entry["sender"],
            "senderLabel": "sender id",
            "createdAt": _iso(entry["createdAt"]),
            "lastSeenAt": _iso(entry["createdAt"]),
            "expiresAt": _iso(entry["expiresAt"]),
            "notifySupported": False,
        }
        if entry.get("senderName"):
            request["metadata"] = {"name": entry["senderName"]}
        requests.append(request)
    return {
        "accounts": [
            {
                "channel": channel,
                "channelLabel": channel_label(channel),
                "accountId": account_id,
                "notifySupported": False,
            }
            for channel, account_id in accounts
        ],
        "requests": requests,
        "commandOwnerConfigured": False,
        "limits": {"pendingPerAccount": pending_per_account, "ttlMs": ttl_ms},
    }
