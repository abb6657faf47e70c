"""Signal's pure parts: reading envelopes, signal-cli's errors, `[channels.signal]` (no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from clawgate.channels.base import (
    AccountConfig,
    AuthFailed,
    ChannelError,
    ChatKind,
    PermanentSendError,
    RateLimited,
)
from clawgate.channels.settings import resolve_accounts
from clawgate.channels.signal_protocol import is_group, normalize, rpc_error
from clawgate.config import ChannelsSection

BOT = "+15550001111"
BOT_UUID = "0b3c5a1e-1111-4a2b-9c3d-000000000001"
ACCOUNT = AccountConfig(channel="signal", account_id="default")
GROUP = "Pmpi+EfPWmsxiomLe9Nx2XF9HOE483p6iKiFj65iMwI="


def envelope(**data: Any) -> dict[str, Any]:
    message = {"timestamp": 1700000000123, "message": "hi", **data}
    return {
        "source": "+15550002222",
        "sourceNumber": "+15550002222",
        "sourceUuid": "a1b2c3d4-0000-4000-8000-000000000002",
        "sourceName": "Alice",
        "timestamp": 1700000000123,
        "dataMessage": message,
    }


def test_a_dm_is_a_dm_that_mentions_the_bot_with_the_signal_message_identity() -> None:
    message = normalize(envelope(), ACCOUNT, BOT)
    assert message is not None
    assert (message.chat.kind, message.chat.id, message.mentioned) == (
        ChatKind.DM,
        "+15550002222",
        True,
    )
    assert message.message_id == "+15550002222:1700000000123"
    assert (message.sender.name, message.received_at) == ("Alice", 1700000000123)


def test_a_sender_who_hides_their_number_is_known_by_uuid() -> None:
    raw = envelope()
    raw.pop("sourceNumber")
    raw["source"] = raw["sourceUuid"]
    message = normalize(raw, ACCOUNT, BOT)
    assert message is not None and message.sender.id == raw["sourceUuid"]


def test_a_group_message_is_in_the_group_and_not_mentioned() -> None:
    message = normalize(envelope(groupInfo={"groupId": GROUP, "type": "DELIVER"}), ACCOUNT, BOT)
    assert message is not None
    assert (message.chat.kind, message.chat.id, message.mentioned) == (ChatKind.GROUP, GROUP, False)


@pytest.mark.parametrize("who", [{"number": BOT}, {"uuid": BOT_UUID, "number": None}])
def test_a_mention_of_the_bot_is_seen_and_its_placeholder_taken_out(who: dict[str, Any]) -> None:
    mention = {"name": "bot", "start": 0, "length": 1, **who}
    raw = envelope(message="\ufffc hello", mentions=[mention], groupInfo={"groupId": GROUP})
    message = normalize(raw, ACCOUNT, BOT, BOT_UUID)
    assert message is not None and (message.mentioned, message.text) == (True, "hello")


def test_a_mention_of_someone_else_reads_as_their_name() -> None:
    mention = {"name": "Bob", "number": "+15550003333", "start": 3, "length": 1}
    raw = envelope(message="hi \ufffc!", mentions=[mention], groupInfo={"groupId": GROUP})
    message = normalize(raw, ACCOUNT, BOT)
    assert message is not None and (message.mentioned, message.text) == (False, "hi @Bob!")


def test_a_quote_of_the_bot_counts_as_a_mention_and_names_the_message() -> None:
    quote = {"id": 1699999999000, "authorNumber": BOT, "author": BOT, "text": "earlier"}
    message = normalize(envelope(quote=quote, groupInfo={"groupId": GROUP}), ACCOUNT, BOT)
    assert message is not None and message.mentioned
    assert message.reply_to == f"{BOT}:1699999999000"


@pytest.mark.parametrize(
    "raw",
    [
        {**envelope(), "sourceNumber": BOT, "source": BOT},
        {**envelope(), "dataMessage": None},
        {**envelope(), "timestamp": "soon"},
        {"source": "+15550002222", "timestamp": 1, "receiptMessage": {"isDelivery": True}},
        envelope(message="   "),
        envelope(message=None),
        ["not", "an", "envelope"],
    ],
)
def test_what_is_not_a_person_s_message_is_skipped(raw: Any) -> None:
    assert normalize(raw, ACCOUNT, BOT) is None


def test_an_attachment_without_text_is_a_message() -> None:
    raw = envelope(message=None, attachments=[{"id": "x1.jpg", "contentType": "image/jpeg"}])
    assert normalize(raw, ACCOUNT, BOT) is not None


@pytest.mark.parametrize(
    ("chat", "group"),
    [("+15550002222", False), ("a1b2c3d4-0000-4000-8000-000000000002", False), (GROUP, True)],
)
def test_a_chat_id_is_a_group_unless_it_is_a_number_or_a_uuid(chat: str, group: bool) -> None:
    assert is_group(chat) is group


def test_an_account_signal_cli_does_not_hold_is_an_auth_failure() -> None:
    error = rpc_error({"code": -32602, "message": "Specified account does not exist"}, ACCOUNT)
    assert isinstance(error, AuthFailed) and "signal-cli link" in str(error)


def test_an_unregistered_recipient_is_a_permanent_failure() -> None:
    result = {"recipientAddress": {"number": "+1555"}, "type": "UNREGISTERED_FAILURE"}
    data = {"response": {"timestamp": 1, "results": [result]}}
    error = rpc_error({"code": -1, "message": "Failed to send", "data": data}, ACCOUNT)
    assert isinstance(error, PermanentSendError)


def test_a_rate_limit_failure_waits_as_long_as_signal_asks() -> None:
    result = {"type": "RATE_LIMIT_FAILURE", "retryAfterSeconds": 30}
    data = {"response": {"results": [result]}}
    error = rpc_error({"code": -1, "message": "rate limited", "data": data}, ACCOUNT)
    assert isinstance(error, RateLimited) and error.retry_after_s == 30


def test_an_io_error_is_transient() -> None:
    error = rpc_error({"code": -3, "message": "Failed to connect"}, ACCOUNT)
    assert type(error) is ChannelError


def signal_accounts(table: dict[str, Any]) -> Any:
    section = ChannelsSection.model_validate({"signal": table})
    return resolve_accounts(section, Path("/h"), {}).accounts


def test_the_account_number_and_the_local_daemon_are_the_defaults() -> None:
    [account] = signal_accounts({"account": BOT})
    assert account.secret is None
    assert account.options["account"] == BOT
    assert account.options["http_url"] == "http://127.0.0.1:8080"


def test_a_named_account_has_its_own_number() -> None:
    table = {"account": BOT, "accounts": {"work": {"account": "+15550009999"}}}
    default, work = signal_accounts(table)
    assert (default.account_id, work.account_id) == ("default", "work")
    assert work.options["account"] == "+15550009999"


@pytest.mark.parametrize(
    "table", [{}, {"account": "15550001111"}, {"account": BOT, "http_url": "127.0.0.1:8080"}]
)
def test_a_missing_or_malformed_number_or_url_is_refused(table: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ChannelsSection.model_validate({"signal": table})
