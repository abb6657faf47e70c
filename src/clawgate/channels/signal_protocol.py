"""signal-cli's JSON shapes for the Signal channel, without I/O.

`normalize` reads a `receive` event's envelope into an `InboundMessage` (DM or group,
mentions of the bot put back into the text, a quote of the bot's message counted as a
mention), `attachments_of` lists the attachments signal-cli stored for it, `is_group` tells
a group id from a recipient, and `rpc_error` maps a JSON-RPC `error` object to the channel
layer's errors. Nothing here opens a connection or reads a file (`channels/signal.py` is
the shell).
"""

from __future__ import annotations

import re
from typing import Any, Final

from .base import (
    AccountConfig,
    AuthFailed,
    ChannelError,
    ChatKind,
    ChatRef,
    InboundMessage,
    PermanentSendError,
    RateLimited,
    Sender,
)

__all__ = ["E164", "attachments_of", "is_group", "normalize", "rpc_error"]

#: A phone number in E.164 form (`+`, then 6 to 15 digits): an account or a recipient.
E164: Final = re.compile(r"^\+[1-9][0-9]{5,14}$")
_UUID: Final = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_ATTACHMENT_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_MENTION: Final = "\ufffc"
#: The latest Signal timestamp (Unix ms) read: SQLite stores it as a signed 64-bit INTEGER.
_MAX_TIMESTAMP_MS: Final = 2**63 - 1
# signal-cli's JSON-RPC error codes (SignalJsonRpcCommandHandler).
_USER_ERROR: Final = -1
_IO_ERROR: Final = -3
_UNTRUSTED_KEY_ERROR: Final = -4
_INVALID_PARAMS: Final = -32602
_METHOD_NOT_FOUND: Final = -32601


def is_group(chat_id: str) -> bool:
    """Whether a chat id is a group id (base64), not a recipient (a number or a uuid)."""
    return not (E164.fullmatch(chat_id) or _UUID.fullmatch(chat_id))


def _sender_id(envelope: dict[str, Any]) -> str | None:
    for key in ("sourceNumber", "sourceUuid", "source"):
        value = envelope.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _is_bot(number: Any, uuid: Any, bot_number: str, bot_uuid: str | None) -> bool:
    return (isinstance(number, str) and number == bot_number) or (
        bot_uuid is not None and isinstance(uuid, str) and uuid == bot_uuid
    )


def normalize(
    envelope: Any, account: AccountConfig, bot_number: str, bot_uuid: str | None = None
) -> InboundMessage | None:
    """Return the channel layer's view of a `receive` envelope, or None to skip it.

    Handled: envelopes with a `dataMessage` holding text or attachments, from anyone but
    the account itself; receipts, typing, sync and edit messages are skipped.
    """
    if not isinstance(envelope, dict):
        return None
    data = envelope.get("dataMessage")
    sender = _sender_id(envelope)
    timestamp = envelope.get("timestamp")
    if not isinstance(data, dict) or sender is None or type(timestamp) is not int:
        return None
    if not 0 <= timestamp <= _MAX_TIMESTAMP_MS:
        return None
    if _is_bot(envelope.get("sourceNumber"), envelope.get("sourceUuid"), bot_number, bot_uuid):
        return None
    text = data.get("message")
    text = text if isinstance(text, str) else ""
    if not text.strip() and not attachments_of(envelope):
        return None
    group = data.get("groupInfo")
    group_id = group.get("groupId") if isinstance(group, dict) else None
    kind = ChatKind.GROUP if isinstance(group_id, str) and group_id else ChatKind.DM
    mentioned = kind is ChatKind.DM
    mentions = data.get("mentions")
    parts = text.split(_MENTION)
    if isinstance(mentions, list) and len(parts) > 1:
        ordered = sorted(
            (m for m in mentions if isinstance(m, dict)),
            key=lambda m: m["start"] if type(m.get("start")) is int else 0,
        )
        names = []
        for mention in ordered:
            if _is_bot(mention.get("number"), mention.get("uuid"), bot_number, bot_uuid):
                mentioned = True
                names.append("")
            else:
                name = mention.get("name") or mention.get("number") or "someone"
                names.append(f"@{name}")
        names += ["@someone"] * (len(parts) - 1 - len(names))
        text = parts[0] + "".join(n + p for n, p in zip(names, parts[1:], strict=False))
        text = text.strip() if kind is ChatKind.GROUP else text
    quote = data.get("quote")
    reply_to = None
    if isinstance(quote, dict) and type(quote.get("id")) is int:
        author = quote.get("authorNumber") or quote.get("authorUuid") or quote.get("author")
        if isinstance(author, str) and author:
            reply_to = f"{author}:{quote['id']}"
            if _is_bot(quote.get("authorNumber"), quote.get("authorUuid"), bot_number, bot_uuid):
                mentioned = True
    name = envelope.get("sourceName")
    title = group.get("groupName") if isinstance(group, dict) else None
    return InboundMessage(
        channel=account.channel,
        account_id=account.account_id,
        message_id=f"{sender}:{timestamp}",
        sender=Sender(sender, name if isinstance(name, str) else ""),
        chat=(
            ChatRef(str(group_id), kind, title if isinstance(title, str) else "")
            if kind is ChatKind.GROUP
            else ChatRef(sender, kind, name if isinstance(name, str) else "")
        ),
        text=text,
        received_at=timestamp,
        reply_to=reply_to,
        mentioned=mentioned,
        command=text.startswith("/"),
    )


def attachments_of(envelope: dict[str, Any]) -> list[dict[str, Any]]:
    """Return an envelope's attachments that name a file signal-cli stored (`id`)."""
    data = envelope.get("dataMessage")
    items = data.get("attachments") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return []
    return [
        item
        for item in items
        if isinstance(item, dict)
        and isinstance(item.get("id"), str)
        and _ATTACHMENT_ID.fullmatch(item["id"])
    ]


def rpc_error(error: Any, account: AccountConfig) -> ChannelError:
    """Return the channel layer's error for a JSON-RPC `error` object of signal-cli."""
    if not isinstance(error, dict):
        return ChannelError("signal-cli answered a malformed JSON-RPC error")
    code, message = error.get("code"), str(error.get("message") or "")[:300]
    if code == _INVALID_PARAMS and "account" in message.lower():
        return AuthFailed(
            f"signal-cli does not hold the account {account.key} ({message}); link it"
            " (signal-cli link -n clawgate) or register it, then restart the daemon"
        )
    data = error.get("data")
    response = data.get("response") if isinstance(data, dict) else None
    results = response.get("results") if isinstance(response, dict) else None
    types = [r.get("type") for r in results or [] if isinstance(r, dict)]
    if "RATE_LIMIT_FAILURE" in types:
        waits = [
            float(r["retryAfterSeconds"])
            for r in results or []
            if isinstance(r, dict) and isinstance(r.get("retryAfterSeconds"), int | float)
        ]
        wait = max(waits) if waits else 60.0
        return RateLimited(f"Signal asked to wait {wait:g} s", wait, account_wide=True)
    if "UNREGISTERED_FAILURE" in types:
        return PermanentSendError("the recipient is not registered with Signal")
    if code == _UNTRUSTED_KEY_ERROR or "IDENTITY_FAILURE" in types:
        return PermanentSendError(
            "the recipient's safety number changed; trust it with signal-cli trust"
        )
    if code in (_USER_ERROR, _METHOD_NOT_FOUND) or (isinstance(code, int) and code <= -32600):
        return PermanentSendError(f"signal-cli refused the request: {message}")
    if code == _IO_ERROR:
        return ChannelError(f"signal-cli could not reach Signal: {message}")
    return ChannelError(f"signal-cli error {code}: {message}")
