"""Matrix's client-server event rules for the Matrix channel, without I/O.

`normalize` reads an `m.room.message` event (a plain dict, as `/sync` and `/messages` return
it) into an `InboundMessage`, given the `RoomView` of its room: DM or group, reply fallbacks
stripped (`strip_reply_fallback`), thread and reply relations, mentions of the bot.
`message_content` builds an outbound message's content, with the relation that puts it in
its thread or reply chain. `device_id` and `safe_name` name the bot's device and a
downloaded file. Nothing here touches nio or the network (`channels/matrix.py` is the shell).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from .base import AccountConfig, ChatKind, ChatRef, InboundMessage, Media, Sender, Target

__all__ = [
    "MEDIA_KINDS",
    "RoomView",
    "device_id",
    "message_content",
    "normalize",
    "safe_name",
    "strip_reply_fallback",
]

#: Message types that carry a file, and the `Media` kind each becomes.
MEDIA_KINDS: Final = {
    "m.image": "photo",
    "m.file": "document",
    "m.audio": "audio",
    "m.video": "video",
}
_TEXT_TYPES: Final = frozenset({"m.text", "m.emote"})


@dataclass(frozen=True, slots=True)
class RoomView:
    """What normalizing an event needs to know about its room and the bot."""

    room_id: str
    direct: bool
    title: str
    me: str
    # The bot's names a person may address it by (localpart, display name), lower-case.
    my_names: tuple[str, ...]


def strip_reply_fallback(body: str) -> str:
    """Drop the `> <@user> quoted` lines a client puts before the text of a reply."""
    lines = body.split("\n")
    if not lines or not lines[0].startswith("> "):
        return body
    index = 0
    while index < len(lines) and lines[index].startswith(">"):
        index += 1
    return "\n".join(lines[index:]).lstrip("\n")


def _relation(content: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """Return (rel_type, thread root, replied-to event) of a message's `m.relates_to`."""
    relates = content.get("m.relates_to")
    if not isinstance(relates, dict):
        return None, None, None
    rel_type = relates.get("rel_type") if isinstance(relates.get("rel_type"), str) else None
    thread = relates.get("event_id") if rel_type == "m.thread" else None
    in_reply = relates.get("m.in_reply_to")
    reply = in_reply.get("event_id") if isinstance(in_reply, dict) else None
    if rel_type == "m.thread" and relates.get("is_falling_back"):
        reply = None  # a thread client's fallback, not a real reply
    return (
        rel_type,
        thread if isinstance(thread, str) else None,
        reply if isinstance(reply, str) else None,
    )


def _mentions_me(
    content: dict[str, Any], text: str, room: RoomView, replied: str | None, own: Iterable[str]
) -> bool:
    mentions = content.get("m.mentions")
    if isinstance(mentions, dict) and room.me in (mentions.get("user_ids") or []):
        return True
    if replied is not None and replied in own:
        return True
    lowered = text.lower()
    if room.me.lower() in lowered:
        return True
    pattern = r"(?<![\w@]){}(?!\w)"
    return any(
        re.search(pattern.format(re.escape(name)), lowered) for name in room.my_names if name
    )


def normalize(
    event: dict[str, Any],
    room: RoomView,
    account: AccountConfig,
    sender_name: str = "",
    media: tuple[Media, ...] = (),
    own_events: Iterable[str] = (),
) -> InboundMessage | None:
    """Return the channel layer's view of a room event, or None for what it does not handle.

    Handled: `m.room.message` events of type text, emote, image, file, audio and video from
    anyone but the bot. Edits, notices, redacted and unknown events are skipped.
    """
    if event.get("type") != "m.room.message" or event.get("state_key") is not None:
        return None
    sender, event_id = event.get("sender"), event.get("event_id")
    content = event.get("content")
    if not isinstance(sender, str) or not isinstance(event_id, str) or sender == room.me:
        return None
    if not isinstance(content, dict):
        return None
    msgtype = content.get("msgtype")
    body = content.get("body")
    if msgtype not in _TEXT_TYPES and msgtype not in MEDIA_KINDS:
        return None
    if not isinstance(body, str):
        return None
    rel_type, thread, reply = _relation(content)
    if rel_type == "m.replace":
        return None
    if msgtype in MEDIA_KINDS:
        caption = body if content.get("filename") not in (None, body) else ""
        text = caption
    else:
        text = strip_reply_fallback(body) if reply is not None else body
        if msgtype == "m.emote":
            text = f"* {sender_name or sender} {text}"
    if not text.strip() and not media:
        return None
    kind = ChatKind.DM if room.direct else ChatKind.GROUP
    timestamp = event.get("origin_server_ts")
    return InboundMessage(
        channel=account.channel,
        account_id=account.account_id,
        message_id=event_id,
        sender=Sender(sender, sender_name),
        chat=ChatRef(room.room_id, kind, room.title),
        text=text,
        received_at=int(timestamp) if isinstance(timestamp, int) else 0,
        thread_id=thread,
        media=media,
        reply_to=reply,
        mentioned=room.direct or _mentions_me(content, text, room, reply, own_events),
        command=text.startswith("/"),
    )


def message_content(target: Target, body: dict[str, Any]) -> dict[str, Any]:
    """Return `body` with the relation that puts it in `target`'s thread or reply chain.

    `m.mentions` is always present and empty: quoted text never pings anyone.
    """
    content = {**body, "m.mentions": {}}
    reply = target.reply_to if target.reply_to and target.reply_to.startswith("$") else None
    if target.thread_id:
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": target.thread_id,
            # Clients without threads show the message as a reply to the latest one.
            "is_falling_back": reply is None,
            "m.in_reply_to": {"event_id": reply or target.thread_id},
        }
    elif reply is not None:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply}}
    return content


def device_id(account: AccountConfig) -> str:
    """Return the fixed device id an account logs in on (restarts reuse one device)."""
    return "CLAWGATE_" + re.sub(r"[^A-Z0-9]", "_", account.account_id.upper())


def safe_name(event_id: str) -> str:
    """Return an event id as a file name (the stem of its downloaded file)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", event_id.lstrip("$"))[:80]
