"""Slack's pure parts: reading Events API events, resolving `[channels.slack]` (no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clawgate.channels.base import AccountConfig, ChatKind
from clawgate.channels.settings import resolve_accounts
from clawgate.channels.slack import normalize
from clawgate.config import ChannelsSection
from clawgate.config_file import REDACTED, redact_data

BOT = "U0BOT"
ACCOUNT = AccountConfig(channel="slack", account_id="default")
BOT_TOKEN = "xoxb-1-2-bot-secret"
APP_TOKEN = "xapp-1-A1-3-app-secret"


def event(**fields: Any) -> dict[str, Any]:
    base = {"type": "message", "user": "U0ALICE", "text": "hi", "ts": "1700000000.000100"}
    return {**base, **fields}


def test_a_dm_is_a_dm_that_mentions_the_bot_outside_any_thread() -> None:
    message = normalize(event(channel="D1", channel_type="im"), BOT, ACCOUNT)
    assert message is not None
    assert (message.chat.kind, message.mentioned, message.thread_id) == (ChatKind.DM, True, None)
    assert message.message_id == "D1:1700000000.000100"


def test_a_top_level_channel_message_starts_its_own_thread() -> None:
    message = normalize(event(channel="C1", channel_type="channel"), BOT, ACCOUNT)
    assert message is not None
    assert message.chat.kind is ChatKind.GROUP and message.thread_id == "1700000000.000100"
    assert message.mentioned is False


def test_a_mention_is_seen_and_taken_out_of_the_text() -> None:
    raw = event(channel="C1", channel_type="channel", text=f"<@{BOT}> hello", thread_ts="1.5")
    message = normalize(raw, BOT, ACCOUNT)
    assert message is not None
    assert (message.mentioned, message.text, message.thread_id) == (True, "hello", "1.5")


def test_an_app_mention_is_the_same_message_as_its_message_event() -> None:
    plain = normalize(event(channel="C1", channel_type="channel"), BOT, ACCOUNT)
    mention = normalize(event(type="app_mention", channel="C1"), BOT, ACCOUNT)
    assert plain is not None and mention is not None
    assert plain.message_id == mention.message_id and mention.mentioned


@pytest.mark.parametrize(
    "raw",
    [
        event(channel="C1", subtype="message_changed"),
        event(channel="C1", bot_id="B1"),
        event(channel="C1", user=BOT),
        event(channel="C1", text="  "),
        event(channel="C1", ts="not-a-ts"),
        {"type": "reaction_added", "user": "U0ALICE"},
        event(channel=None),
    ],
)
def test_what_is_not_a_person_s_message_is_skipped(raw: dict[str, Any]) -> None:
    assert normalize(raw, BOT, ACCOUNT) is None


def slack_accounts(table: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    section = ChannelsSection.model_validate({"slack": table})
    return resolve_accounts(section, Path("/h"), env or {}).accounts


def test_both_tokens_come_from_the_environment_by_default() -> None:
    env = {"CLAWGATE_SLACK_BOT_TOKEN": BOT_TOKEN, "CLAWGATE_SLACK_APP_TOKEN": APP_TOKEN}
    [account] = slack_accounts({}, env)
    assert account.secret == BOT_TOKEN and account.options["app_token"] == APP_TOKEN
    assert account.options["api_base"] == "https://slack.com/api/"


def test_the_app_token_never_shows_in_the_account_repr() -> None:
    [account] = slack_accounts({"bot_token": BOT_TOKEN, "app_token": APP_TOKEN})
    assert APP_TOKEN not in repr(account) and BOT_TOKEN not in repr(account)


def test_both_tokens_are_redacted_when_config_is_shown() -> None:
    data = {"channels": {"slack": {"bot_token": BOT_TOKEN, "app_token": APP_TOKEN}}}
    shown = redact_data(data)["channels"]["slack"]
    assert shown == {"bot_token": REDACTED, "app_token": REDACTED}


SIGNING_SECRET = "0123456789abcdef-signing-secret"


def test_the_signing_secret_comes_from_the_environment_by_default() -> None:
    env = {"CLAWGATE_SLACK_BOT_TOKEN": BOT_TOKEN, "CLAWGATE_SLACK_SIGNING_SECRET": SIGNING_SECRET}
    [account] = slack_accounts({"mode": "events"}, env)
    assert account.options["mode"] == "events"
    assert account.options["signing_secret"] == SIGNING_SECRET


def test_the_signing_secret_is_read_from_its_file(tmp_path: Path) -> None:
    (tmp_path / "slack-signing").write_text(SIGNING_SECRET + "\n")
    table = {"mode": "events", "bot_token": BOT_TOKEN, "signing_secret_file": "slack-signing"}
    section = ChannelsSection.model_validate({"slack": table})
    [account] = resolve_accounts(section, tmp_path, {}).accounts
    assert account.options["signing_secret"] == SIGNING_SECRET


def test_the_mode_defaults_to_socket_mode() -> None:
    [account] = slack_accounts({"bot_token": BOT_TOKEN, "app_token": APP_TOKEN})
    assert account.options["mode"] == "socket"


def test_the_signing_secret_never_shows_in_the_account_repr_or_shown_config() -> None:
    table = {"mode": "events", "bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET}
    [account] = slack_accounts(table)
    shown = redact_data({"channels": {"slack": table}})["channels"]["slack"]
    assert SIGNING_SECRET not in repr(account)
    assert shown["signing_secret"] == REDACTED
