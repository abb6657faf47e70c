"""BlueBubbles' message rules for the iMessage channel, without I/O.

`normalize` reads a BlueBubbles message object (a webhook's `data`, or one row of a
`message/query`) into an `InboundMessage`: `chat_kind` tells a group chat guid from a
one-to-one one, and `MentionRule` stands in for the mentions iMessage lacks. `send_error`
picks the failure out of an event about one of the bot's own messages; `guid` and
`retry_after` read a send's answer and a 429's header. Nothing here opens a connection
(`channels/imessage.py` is the shell).
"""

from __future__ import annotations

import re
from typing import Any, Final

from .base import AccountConfig, ChatKind, ChatRef, InboundMessage, Sender

__all__ = ["MentionRule", "chat_kind", "normalize", "retry_after", "send_error", "sent_guid"]

# BlueBubbles puts U+FFFC where an attachment sits in the text.
_OBJECT_REPLACEMENT: Final = "\ufffc"


def chat_kind(chat_guid: str) -> ChatKind:
    """`iMessage;+;chat...` (and `SMS;+;...`) is a group; `;-;` is a one-to-one chat."""
    return ChatKind.GROUP if ";+;" in chat_guid else ChatKind.DM


class MentionRule:
    """Whether a group message names the bot, and the text without the name.

    iMessage has no mentions a bot can receive, so the bot's configured names stand in:
    `claw, are you there` and `hey @Claw` mention `claw`; `clawed` does not.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        words = "|".join(re.escape(n.strip().lstrip("@")) for n in names if n.strip())
        self._pattern = re.compile(rf"(?<![\w@])@?(?:{words})(?!\w)[,:]?", re.I) if words else None

    def read(self, text: str) -> tuple[bool, str]:
        """Return whether `text` names the bot, and `text` with the names removed."""
        if self._pattern is None:
            return False, text
        stripped, count = self._pattern.subn("", text)
        return count > 0, " ".join(stripped.split()) if count else text


def send_error(data: dict[str, Any]) -> tuple[str, int] | None:
    """Return the guid and error code of one of the bot's messages that failed, else None.

    BlueBubbles carries Messages' own code in `error` (0 when all is well; 4, 22 or its
    own 1000+ when the message did not go out).
    """
    guid, code = data.get("guid"), data.get("error")
    if not data.get("isFromMe") or not isinstance(guid, str) or not guid:
        return None
    if not isinstance(code, int) or isinstance(code, bool) or code == 0:
        return None
    return guid, code


def normalize(
    data: dict[str, Any], account: AccountConfig, mentions: MentionRule
) -> InboundMessage | None:
    """Return the channel layer's view of a BlueBubbles message object, or None to skip it.

    Skipped: the bot's own messages (`isFromMe`), tapbacks and other associated messages,
    messages without a sender or a guid, and empty ones.
    """
    guid = data.get("guid")
    if not isinstance(guid, str) or not guid or data.get("isFromMe"):
        return None
    if data.get("associatedMessageGuid") or data.get("associatedMessageType"):
        return None
    handle = data.get("handle")
    address = handle.get("address") if isinstance(handle, dict) else None
    if not isinstance(address, str) or not address:
        return None
    chats = data.get("chats")
    first = chats[0] if isinstance(chats, list) and chats else None
    chat_guid = first.get("guid") if isinstance(first, dict) else None
    if not isinstance(chat_guid, str) or not chat_guid:
        chat_guid = f"iMessage;-;{address}"
    title = first.get("displayName") if isinstance(first, dict) else None
    raw = data.get("text")
    text = raw.replace(_OBJECT_REPLACEMENT, "").strip() if isinstance(raw, str) else ""
    attachments = data.get("attachments")
    if not text and not (isinstance(attachments, list) and attachments):
        return None
    kind = chat_kind(chat_guid)
    mentioned = True
    if kind is ChatKind.GROUP:
        mentioned, text = mentions.read(text)
    created = data.get("dateCreated")
    origin = data.get("threadOriginatorGuid")
    return InboundMessage(
        channel=account.channel,
        account_id=account.account_id,
        message_id=guid,
        sender=Sender(address),
        chat=ChatRef(chat_guid, kind, title if isinstance(title, str) else ""),
        text=text,
        received_at=created if isinstance(created, int) else 0,
        reply_to=origin if isinstance(origin, str) and origin else None,
        mentioned=mentioned,
        command=text.startswith("/"),
    )


def sent_guid(sent: Any, fallback: str) -> str:
    """Return the guid BlueBubbles gave a sent message, or `fallback` (its temp guid)."""
    given = sent.get("guid") if isinstance(sent, dict) else None
    return str(given) if given else fallback


def retry_after(value: str | None) -> float:
    """Return the seconds a `Retry-After` header asks to wait (1 when absent or unreadable)."""
    try:
        return max(float(value), 0.0) if value is not None else 1.0
    except ValueError:
        return 1.0
