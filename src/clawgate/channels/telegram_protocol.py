"""Telegram's Bot API objects read for the Telegram channel, without I/O.

`normalize` reads an `Update` (already parsed by python-telegram-bot) into an
`InboundMessage`: DM or group, forum topic, reply, and whether a group message addresses
the bot (an `@botname` mention, a `/command@botname`, a text mention or a reply to the
bot). `chat_id` and `seconds` turn a chat id and a retry delay into what PTB and the layer
take. Nothing here calls the API; PTB's types are imported for annotations only, so this
module loads without the telegram extra (`channels/telegram.py` is the shell).
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

from .base import AccountConfig, ChatKind, ChatRef, InboundMessage, Media, Sender

if TYPE_CHECKING:  # annotations only: the SDK loads with the adapter (channels/base.py)
    from telegram import Message, Update, User

__all__ = ["chat_id", "normalize", "seconds"]


def chat_id(value: str) -> int | str:
    """Return a chat id as the Bot API takes it: a number, or an `@channelname` as is."""
    return int(value) if value.lstrip("-").isdigit() else value


def _mentions_me(message: Message, me: User) -> bool:
    """Whether a group message addresses the bot: @mention, /cmd@bot, text_mention, reply."""
    reply = message.reply_to_message
    if reply is not None and reply.from_user is not None and reply.from_user.id == me.id:
        return True
    username = (me.username or "").lower()
    entities = message.parse_entities() or message.parse_caption_entities()
    for entity, fragment in entities.items():
        if entity.type == "text_mention":
            if entity.user is not None and entity.user.id == me.id:
                return True
            continue
        fragment = fragment.lower()
        if entity.type == "mention" and username and fragment == f"@{username}":
            return True
        if entity.type == "bot_command" and username and fragment.endswith(f"@{username}"):
            return True
    return False


def normalize(
    update: Update, me: User, account: AccountConfig, media: tuple[Media, ...] = ()
) -> InboundMessage | None:
    """Return the channel layer's view of an update, or None for what it does not handle.

    Handled: `message` updates from users in private chats, groups and supergroups.
    Anything else (edits, channel posts, member changes, unknown kinds) is skipped.
    """
    message = update.message
    if message is None or message.from_user is None or message.from_user.is_bot:
        return None
    chat = message.chat
    if chat.type == "private":
        kind = ChatKind.DM
    elif chat.type in ("group", "supergroup"):
        kind = ChatKind.GROUP
    else:
        return None
    text = message.text or message.caption or ""
    if not text.strip() and not media:
        return None
    user = message.from_user
    name = " ".join(p for p in (user.first_name, user.last_name) if p) or user.username or ""
    topic = message.message_thread_id if message.is_topic_message else None
    return InboundMessage(
        channel=account.channel,
        account_id=account.account_id,
        message_id=f"{chat.id}:{message.message_id}",
        sender=Sender(str(user.id), name),
        chat=ChatRef(str(chat.id), kind, chat.title or ""),
        text=text,
        received_at=int(message.date.timestamp() * 1000),
        thread_id=str(topic) if topic is not None else None,
        thread_kind="topic",
        media=media,
        reply_to=(
            str(message.reply_to_message.message_id)
            if message.reply_to_message is not None
            else None
        ),
        mentioned=kind is ChatKind.DM or _mentions_me(message, me),
        command=text.startswith("/"),
    )


def seconds(value: int | float | datetime.timedelta) -> float:
    """Return a PTB duration (seconds, or a timedelta in newer versions) in seconds."""
    return value.total_seconds() if isinstance(value, datetime.timedelta) else float(value)
