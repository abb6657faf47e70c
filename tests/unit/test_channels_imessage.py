"""iMessage's pure parts: reading BlueBubbles messages, names as mentions, the config table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from clawgate.channels.base import AccountConfig, ChatKind
from clawgate.channels.imessage_protocol import MentionRule, chat_kind, normalize, send_error
from clawgate.channels.settings import resolve_accounts
from clawgate.config import ChannelsSection
from clawgate.config_file import REDACTED, redact_data

ACCOUNT = AccountConfig(channel="imessage", account_id="default")
NAMES = MentionRule(("Claw",))
PASSWORD = "bb-secret-password"


def message(**fields: Any) -> dict[str, Any]:
    base = {
        "guid": "6B4D-GUID",
        "text": "hello",
        "isFromMe": False,
        "handle": {"address": "+15550001111"},
        "chats": [{"guid": "iMessage;-;+15550001111", "displayName": ""}],
        "attachments": [],
        "dateCreated": 1_700_000_000_123,
    }
    return {**base, **fields}


def test_a_one_to_one_chat_guid_is_a_dm_and_a_plus_chat_guid_a_group() -> None:
    assert chat_kind("iMessage;-;+15550001111") is ChatKind.DM
    assert chat_kind("SMS;-;+15550001111") is ChatKind.DM
    assert chat_kind("iMessage;+;chat123456") is ChatKind.GROUP


def test_a_dm_is_read_with_its_guid_as_the_dedupe_id_and_counts_as_a_mention() -> None:
    read = normalize(message(), ACCOUNT, NAMES)
    assert read is not None
    assert (read.message_id, read.sender.id, read.chat.kind) == (
        "6B4D-GUID",
        "+15550001111",
        ChatKind.DM,
    )
    assert read.mentioned and read.received_at == 1_700_000_000_123


def test_the_bots_own_messages_and_tapbacks_are_skipped() -> None:
    assert normalize(message(isFromMe=True), ACCOUNT, NAMES) is None
    tapback = message(associatedMessageGuid="p:0/OTHER", associatedMessageType="love")
    assert normalize(tapback, ACCOUNT, NAMES) is None


def test_messages_without_guid_sender_or_content_are_skipped() -> None:
    assert normalize(message(guid=None), ACCOUNT, NAMES) is None
    assert normalize(message(handle=None), ACCOUNT, NAMES) is None
    assert normalize(message(text="\ufffc"), ACCOUNT, NAMES) is None
    assert normalize(message(text=42), ACCOUNT, NAMES) is None


def test_an_attachment_without_text_is_still_a_message() -> None:
    read = normalize(message(text="\ufffc", attachments=[{"guid": "A1"}]), ACCOUNT, NAMES)
    assert read is not None and read.text == ""


def test_a_group_message_mentions_the_bot_only_when_it_names_it() -> None:
    group = [{"guid": "iMessage;+;chat99", "displayName": "Family"}]
    plain = normalize(message(chats=group, text="dinner at 8?"), ACCOUNT, NAMES)
    named = normalize(message(chats=group, text="@claw, what time is it"), ACCOUNT, NAMES)
    assert plain is not None and not plain.mentioned
    assert named is not None and named.mentioned and named.text == "what time is it"
    assert named.chat.title == "Family"


def test_a_name_inside_another_word_is_not_a_mention() -> None:
    assert MentionRule(("claw",)).read("the cat clawed the sofa") == (
        False,
        "the cat clawed the sofa",
    )
    assert MentionRule(()).read("claw") == (False, "claw")


def test_a_message_without_chats_is_a_dm_with_its_sender() -> None:
    read = normalize(message(chats=[]), ACCOUNT, NAMES)
    assert read is not None and read.chat.id == "iMessage;-;+15550001111"


def imessage_accounts(table: dict[str, Any], environ: dict[str, str] | None = None) -> Any:
    section = ChannelsSection.model_validate({"imessage": table})
    return resolve_accounts(section, Path("/nonexistent"), environ or {}).accounts


def test_only_the_bots_own_messages_with_a_non_zero_error_are_send_failures() -> None:
    assert send_error({"guid": "G1", "isFromMe": True, "error": 22}) == ("G1", 22)
    assert send_error({"guid": "G1", "isFromMe": True, "error": 0}) is None
    assert send_error({"guid": "G1", "isFromMe": False, "error": 22}) is None
    assert send_error({"guid": "G1", "isFromMe": True, "error": True}) is None
    assert send_error({"guid": "G1", "isFromMe": True, "error": "22"}) is None
    assert send_error({"isFromMe": True, "error": 22}) is None


def test_the_password_comes_from_the_environment_for_the_default_account() -> None:
    [account] = imessage_accounts(
        {"server_url": "http://mac:1234/"}, {"CLAWGATE_IMESSAGE_PASSWORD": PASSWORD}
    )
    assert account.secret == PASSWORD and account.options["server_url"] == "http://mac:1234"
    assert account.options["mention_names"] == ("clawgate",)
    assert PASSWORD not in repr(account)


def test_a_server_url_without_a_scheme_is_refused() -> None:
    with pytest.raises(ValidationError, match="http"):
        imessage_accounts({"server_url": "mac.local:1234"})


def test_the_password_is_redacted_wherever_config_is_shown() -> None:
    data = {"channels": {"imessage": {"password": PASSWORD, "accounts": {"b": {"password": "x"}}}}}
    shown = redact_data(data)
    assert shown["channels"]["imessage"]["password"] == REDACTED
    assert shown["channels"]["imessage"]["accounts"]["b"]["password"] == REDACTED
