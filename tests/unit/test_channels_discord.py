"""Discord's pure parts: the gateway session, messages, rate limits, `[channels.discord]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clawgate.channels.base import AccountConfig, ChatKind
from clawgate.channels.discord_protocol import (
    INTENTS,
    CloseAction,
    DiscordGatewayMachine,
    Op,
    RateLimits,
    close_action,
    normalize,
    retry_after,
)
from clawgate.channels.settings import resolve_accounts
from clawgate.config import ChannelsSection
from clawgate.config_file import REDACTED, redact_data

BOT = "1100000000000000001"
ALICE = "1500000000000000001"
ACCOUNT = AccountConfig(channel="discord", account_id="default")
TOKEN = "MTEw.GfAkEt.unit-test-token"


def message(**fields: Any) -> dict[str, Any]:
    base = {
        "id": "1234567890123456789",
        "type": 0,
        "channel_id": "1400000000000000001",
        "author": {"id": ALICE, "username": "alice", "global_name": "Alice"},
        "content": "hi",
        "mentions": [],
    }
    return {**base, **fields}


def test_a_dm_has_no_guild_and_always_mentions_the_bot() -> None:
    read = normalize(message(), BOT, ACCOUNT, {})
    assert read is not None
    assert (read.chat.kind, read.mentioned, read.thread_id) == (ChatKind.DM, True, None)
    assert (read.message_id, read.sender.id, read.sender.name) == (
        "1234567890123456789",
        ALICE,
        "Alice",
    )


def test_a_guild_message_is_mentioned_by_the_mentions_list_and_loses_the_tag() -> None:
    raw = message(guild_id="1", content=f"<@!{BOT}> hello", mentions=[{"id": BOT}])
    read = normalize(raw, BOT, ACCOUNT, {})
    assert read is not None
    assert (read.chat.kind, read.mentioned, read.text) == (ChatKind.GROUP, True, "hello")


def test_a_guild_message_without_a_mention_is_not_mentioned() -> None:
    read = normalize(message(guild_id="1", content="talking"), BOT, ACCOUNT, {})
    assert read is not None and read.mentioned is False


def test_a_thread_message_belongs_to_its_parent_channel_with_the_thread_as_its_own() -> None:
    raw = message(guild_id="1", channel_id="77")
    read = normalize(raw, BOT, ACCOUNT, {"77": "70"})
    assert read is not None and (read.chat.id, read.thread_id) == ("70", "77")


def test_a_reply_keeps_the_message_it_answers() -> None:
    raw = message(type=19, message_reference={"message_id": "42"})
    read = normalize(raw, BOT, ACCOUNT, {})
    assert read is not None and read.reply_to == "42"


def test_the_received_time_comes_from_the_snowflake() -> None:
    read = normalize(message(id=str((1000 << 22) | 5)), BOT, ACCOUNT, {})
    assert read is not None and read.received_at == 1_420_070_401_000


@pytest.mark.parametrize(
    "raw",
    [
        message(author={"id": "9", "username": "other", "bot": True}),
        message(author={"id": BOT, "username": "clawgate"}),
        message(webhook_id="5"),
        message(type=6),  # a pin notice
        message(content="   "),
        message(content=None),
        message(id=5),
        {"op": 0},
        None,
    ],
)
def test_what_is_not_a_person_s_message_is_skipped(raw: Any) -> None:
    assert normalize(raw, BOT, ACCOUNT, {}) is None


def test_without_a_session_hello_is_answered_with_identify_and_the_intents() -> None:
    machine = DiscordGatewayMachine(TOKEN, gateway_url="wss://gateway.example")
    payload = machine.after_hello()
    assert payload["op"] == Op.IDENTIFY and payload["d"]["intents"] == INTENTS
    assert machine.connect_url() == "wss://gateway.example/?v=10&encoding=json"


def test_after_ready_hello_is_answered_with_resume_at_the_resume_url() -> None:
    machine = DiscordGatewayMachine(TOKEN, gateway_url="wss://gateway.example")
    ready = {"session_id": "abc", "resume_gateway_url": "wss://resume.example", "user": {"id": BOT}}
    machine.on_dispatch("READY", ready)
    machine.handled(1)
    machine.handled(7)
    assert machine.after_hello() == {
        "op": Op.RESUME,
        "d": {"token": TOKEN, "session_id": "abc", "seq": 7},
    }
    assert machine.connect_url().startswith("wss://resume.example/?v=10")
    assert machine.bot_id == BOT


def test_the_sequence_never_moves_backwards() -> None:
    machine = DiscordGatewayMachine(TOKEN)
    machine.handled(9)
    machine.handled(4)
    machine.handled(None)
    assert machine.heartbeat() == {"op": Op.HEARTBEAT, "d": 9}


def test_an_invalid_session_not_resumable_is_forgotten_a_resumable_one_kept() -> None:
    machine = DiscordGatewayMachine(TOKEN)
    machine.on_dispatch("READY", {"session_id": "abc"})
    machine.on_invalid_session(True)
    assert machine.session_id == "abc"
    machine.on_invalid_session(False)
    assert machine.session_id is None and machine.after_hello()["op"] == Op.IDENTIFY


def test_threads_are_learned_from_guild_create_and_thread_events() -> None:
    machine = DiscordGatewayMachine(TOKEN)
    thread = {"id": "77", "type": 11, "parent_id": "70"}
    machine.on_dispatch(
        "GUILD_CREATE", {"channels": [{"id": "70", "type": 0}], "threads": [thread]}
    )
    machine.on_dispatch("THREAD_CREATE", {"id": "78", "type": 12, "parent_id": "70"})
    assert machine.threads == {"77": "70", "78": "70"} and machine.channels == {"70"}
    machine.on_dispatch("THREAD_DELETE", {"id": "77"})
    assert "77" not in machine.threads


@pytest.mark.parametrize(
    ("code", "action"),
    [
        (4004, CloseAction.AUTH_FAILED),
        (4014, CloseAction.FATAL),
        (4013, CloseAction.FATAL),
        (4007, CloseAction.IDENTIFY),
        (4009, CloseAction.IDENTIFY),
        (1000, CloseAction.IDENTIFY),
        (4000, CloseAction.RESUME),
        (1006, CloseAction.RESUME),
        (None, CloseAction.RESUME),
    ],
)
def test_each_close_code_asks_for_its_action(code: int | None, action: CloseAction) -> None:
    assert close_action(code)[0] is action


def test_a_spent_bucket_is_waited_out_until_it_resets() -> None:
    limits = RateLimits()
    limits.update("POST /c/1", {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "2.5"}, 10)
    assert limits.wait("POST /c/1", 11.0) == pytest.approx(1.5)
    assert limits.wait("POST /c/2", 11.0) == 0.0
    assert limits.wait("POST /c/1", 13.0) == 0.0


def test_a_bucket_counts_down_requests_sent_before_their_answers() -> None:
    limits = RateLimits()
    limits.update("r", {"x-ratelimit-remaining": "1", "x-ratelimit-reset-after": "1"}, 0)
    assert limits.wait("r", 0.1) == 0.0
    limits.sent("r")
    assert limits.wait("r", 0.1) == pytest.approx(0.9)


def test_a_global_429_holds_every_route() -> None:
    limits = RateLimits()
    limits.limited("POST /c/1", 3.0, True, 100.0)
    assert limits.wait("GET /users/@me", 101.0) == pytest.approx(2.0)


def test_retry_after_prefers_the_body_then_the_header() -> None:
    assert retry_after({"retry_after": 0.25, "global": True}, {"Retry-After": "1"}) == (0.25, True)
    assert retry_after(None, {"Retry-After": "2"}) == (2.0, False)
    assert retry_after("text", {}) == (1.0, False)


def discord_accounts(table: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    section = ChannelsSection.model_validate({"discord": table})
    return resolve_accounts(section, Path("/h"), env or {}).accounts


def test_the_token_comes_from_the_environment_by_default() -> None:
    [account] = discord_accounts({}, {"CLAWGATE_DISCORD_BOT_TOKEN": TOKEN})
    assert account.secret == TOKEN and account.options["api_base"] == "https://discord.com/api/v10"
    assert TOKEN not in repr(account)


def test_a_named_account_does_not_inherit_the_token() -> None:
    accounts = discord_accounts({"token": TOKEN, "accounts": {"second": {"token_env": "X2"}}})
    assert [(a.account_id, a.secret) for a in accounts] == [("default", TOKEN), ("second", None)]


def test_the_token_is_redacted_when_config_is_shown() -> None:
    data = {"channels": {"discord": {"token": TOKEN, "accounts": {"b": {"token": TOKEN}}}}}
    shown = redact_data(data)["channels"]["discord"]
    assert shown == {"token": REDACTED, "accounts": {"b": {"token": REDACTED}}}


def test_an_api_base_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="must start with http"):
        ChannelsSection.model_validate({"discord": {"api_base": "discord.com/api"}})
