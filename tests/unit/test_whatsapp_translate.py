"""neonize's message events into the channel layer's `InboundMessage` (pure translation)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from neonize.aioze.events import MessageEv
from neonize.proto.Neonize_pb2 import JID, MessageInfo, MessageSource
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    ContextInfo,
    ExtendedTextMessage,
    ImageMessage,
    Message,
    ProtocolMessage,
)

from clawgate.channels.base import AccountConfig, ChatKind, PermanentSendError
from clawgate.channels.whatsapp_web import format_jid, parse_jid, translate

ACCOUNT = AccountConfig(channel="whatsapp", account_id="default")
ME = "15550001111"


def _jid(text: str) -> JID:
    user, _, server = text.partition("@")
    return JID(User=user, Server=server)


def event(
    body: Message,
    *,
    chat: str = "15557770000@s.whatsapp.net",
    sender: str = "15557770000@s.whatsapp.net",
    group: bool = False,
    from_me: bool = False,
    **info: Any,
) -> MessageEv:
    source = MessageSource(Chat=_jid(chat), Sender=_jid(sender), IsGroup=group, IsFromMe=from_me)
    fields = {"ID": "3EB0AA", "Pushname": "Alice", **info}
    return MessageEv(Info=MessageInfo(MessageSource=source, **fields), Message=body)


def test_a_dm_becomes_a_message_from_its_sender() -> None:
    message = translate(event(Message(conversation="hello")), ACCOUNT, ME, 1000)
    assert message is not None
    assert (message.message_id, message.text, message.received_at) == ("3EB0AA", "hello", 1000)
    assert message.chat.id == "15557770000" and message.chat.kind is ChatKind.DM
    assert (message.sender.id, message.sender.name) == ("15557770000", "Alice")
    assert not message.mentioned and message.reply_to is None


def test_a_group_message_mentioning_us_is_marked_mentioned() -> None:
    body = Message(
        extendedTextMessage=ExtendedTextMessage(
            text="@15550001111 hi",
            contextInfo=ContextInfo(mentionedJID=[f"{ME}@s.whatsapp.net"]),
        )
    )
    message = translate(event(body, chat="1203@g.us", group=True), ACCOUNT, ME, 0)
    assert message is not None and message.mentioned
    assert message.chat.kind is ChatKind.GROUP and message.chat.id == "1203@g.us"


def test_a_reply_to_one_of_our_messages_mentions_us_and_names_what_it_replies_to() -> None:
    body = Message(
        extendedTextMessage=ExtendedTextMessage(
            text="yes",
            contextInfo=ContextInfo(stanzaID="3EB1XX", participant=f"{ME}@s.whatsapp.net"),
        )
    )
    message = translate(event(body, chat="1203@g.us", group=True), ACCOUNT, ME, 0)
    assert message is not None and message.mentioned and message.reply_to == "3EB1XX"


def test_a_mention_of_someone_else_is_not_ours() -> None:
    body = Message(
        extendedTextMessage=ExtendedTextMessage(
            text="@bob", contextInfo=ContextInfo(mentionedJID=["15559990000@s.whatsapp.net"])
        )
    )
    message = translate(event(body, chat="1203@g.us", group=True), ACCOUNT, ME, 0)
    assert message is not None and not message.mentioned


def test_an_image_caption_is_the_text() -> None:
    body = Message(imageMessage=ImageMessage(caption="look", mimetype="image/jpeg"))
    message = translate(event(body), ACCOUNT, ME, 0)
    assert message is not None and message.text == "look"


@pytest.mark.parametrize(
    "skipped",
    [
        event(Message(conversation="mine"), from_me=True),
        event(Message(conversation="status"), chat="status@broadcast"),
        event(Message(conversation="channel post"), chat="1234@newsletter"),
        event(Message(protocolMessage=ProtocolMessage(type=ProtocolMessage.REVOKE))),
        event(Message(conversation="no id"), ID=""),
    ],
    ids=["from-me", "status", "newsletter", "protocol", "no-id"],
)
def test_what_is_not_a_conversation_message_is_skipped(skipped: MessageEv) -> None:
    assert translate(skipped, ACCOUNT, ME, 0) is None


def test_chat_ids_round_trip_and_bare_numbers_are_people() -> None:
    assert format_jid(parse_jid("+15557770000")) == "15557770000"
    assert format_jid(parse_jid("15557770000@s.whatsapp.net")) == "15557770000"
    assert format_jid(parse_jid("1203@g.us")) == "1203@g.us"
    with pytest.raises(PermanentSendError):
        parse_jid("someone@example.com")


@pytest.mark.parametrize(
    "name",
    [
        "connect",
        "send_message",
        "send_chat_presence",
        "download_any",
        "logout",
        "disconnect",
        "stop",
    ],
)
def test_the_stand_in_client_has_neonizes_own_call_shapes(name: str) -> None:
    """What the adapter calls on the stand-in exists on neonize's client, called the same way."""
    from neonize.aioze.client import NewAClient

    from tests.fakes.whatsapp_web import _Client

    real, fake = getattr(NewAClient, name), getattr(_Client, name)
    assert inspect.iscoroutinefunction(real) and inspect.iscoroutinefunction(fake)
    required = [
        p.name
        for p in inspect.signature(real).parameters.values()
        if p.default is inspect.Parameter.empty
    ]
    assert list(inspect.signature(fake).parameters)[: len(required)] == required
