"""The Matrix adapter's pure parts: event normalizing, relations, invites, config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clawgate.channels.base import AccountConfig, ChatKind, Target
from clawgate.channels.matrix_protocol import (
    RoomView,
    message_content,
    normalize,
    strip_reply_fallback,
)
from clawgate.channels.policy import Verdict, decide_invite
from clawgate.channels.settings import resolve_accounts
from clawgate.config import ChannelsSection, ClawgateConfig
from clawgate.config_file import REDACTED, redact_data

ME = "@bot:example.org"
ALICE = "@alice:example.org"
ACCOUNT = AccountConfig("matrix", "default")
ROOM = RoomView("!room:example.org", False, "Team", ME, ("bot", "helper"))
DM = RoomView("!dm:example.org", True, "", ME, ("bot",))


def event(content: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "sender": ALICE,
        "event_id": "$e1",
        "origin_server_ts": 1700000000000,
        "content": content,
        **fields,
    }


def text(body: str, **content: Any) -> dict[str, Any]:
    return event({"msgtype": "m.text", "body": body, **content})


# -- normalize --------------------------------------------------------------------------


def test_a_dm_text_is_a_dm_message_that_mentions_the_bot() -> None:
    message = normalize(text("hello"), DM, ACCOUNT, "Alice")
    assert message is not None
    assert (message.chat.kind, message.sender.id, message.sender.name) == (
        ChatKind.DM,
        ALICE,
        "Alice",
    )
    assert (message.message_id, message.received_at, message.mentioned) == (
        "$e1",
        1700000000000,
        True,
    )


@pytest.mark.parametrize(
    ("body", "content", "mentioned"),
    [
        ("nice weather", {}, False),
        ("bot: status?", {}, True),
        ("ask Helper about it", {}, True),
        ("@bot:example.org hi", {}, True),
        ("robotic arms", {}, False),
        ("hi", {"m.mentions": {"user_ids": [ME]}}, True),
        ("hi", {"m.mentions": {"user_ids": [ALICE]}}, False),
    ],
)
def test_room_messages_mention_the_bot_by_pill_id_or_name(
    body: str, content: dict[str, Any], mentioned: bool
) -> None:
    message = normalize(text(body, **content), ROOM, ACCOUNT)
    assert message is not None and message.mentioned is mentioned


def test_a_reply_to_the_bots_message_is_a_mention_and_loses_its_fallback() -> None:
    body = "> <@bot:example.org> earlier answer\n> second line\n\nthanks"
    relates = {"m.in_reply_to": {"event_id": "$mine"}}
    message = normalize(
        text(body, **{"m.relates_to": relates}), ROOM, ACCOUNT, own_events={"$mine"}
    )
    assert message is not None
    assert (message.text, message.reply_to, message.mentioned) == ("thanks", "$mine", True)


def test_a_thread_message_names_its_root_and_not_the_fallback_reply() -> None:
    relates = {
        "rel_type": "m.thread",
        "event_id": "$root",
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": "$latest"},
    }
    message = normalize(text("in thread", **{"m.relates_to": relates}), ROOM, ACCOUNT)
    assert message is not None
    assert (message.thread_id, message.reply_to) == ("$root", None)


@pytest.mark.parametrize(
    "raw",
    [
        text(""),
        text("   "),
        text("* fixed", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}),
        event({"msgtype": "m.notice", "body": "another bot"}),
        event({"msgtype": "org.example.custom", "body": "?"}),
        event({"msgtype": "m.text", "body": 42}),
        event({"msgtype": "m.text"}),
        event({}),
        event("not a dict"),  # type: ignore[arg-type]
        {**text("hi"), "type": "org.example.event"},
        {**text("hi"), "sender": ME},
        {**text("hi"), "state_key": ""},
        {"type": "m.room.message"},
    ],
)
def test_what_is_not_a_person_s_message_is_skipped(raw: dict[str, Any]) -> None:
    assert normalize(raw, ROOM, ACCOUNT) is None


def test_an_emote_reads_as_an_action() -> None:
    message = normalize(event({"msgtype": "m.emote", "body": "waves"}), DM, ACCOUNT, "Alice")
    assert message is not None and message.text == "* Alice waves"


def test_strip_reply_fallback_keeps_text_that_only_looks_quoted() -> None:
    assert strip_reply_fallback("plain\n> not a fallback") == "plain\n> not a fallback"
    assert strip_reply_fallback("> <@a:b> q\n\nanswer") == "answer"


# -- outbound relations -----------------------------------------------------------------


def test_a_thread_target_sends_an_m_thread_relation_with_its_reply() -> None:
    content = message_content(Target("!r", "$root", "$asked"), {"msgtype": "m.text", "body": "x"})
    assert content["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$root",
        "is_falling_back": False,
        "m.in_reply_to": {"event_id": "$asked"},
    }
    assert content["m.mentions"] == {}


def test_a_reply_target_outside_a_thread_is_a_plain_reply() -> None:
    content = message_content(Target("!r", None, "$asked"), {"body": "x"})
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$asked"}}


def test_a_target_without_thread_or_reply_has_no_relation() -> None:
    assert "m.relates_to" not in message_content(Target("!r", None, "not-an-event"), {})


# -- invites ----------------------------------------------------------------------------


def account(**fields: Any) -> AccountConfig:
    return AccountConfig("matrix", "default", **fields)


@pytest.mark.parametrize(
    ("fields", "inviter", "room", "direct", "verdict"),
    [
        ({}, "@stranger:x", "!r", True, Verdict.ADMIT),  # pairing needs the conversation
        ({"dm_policy": "allowlist"}, "@stranger:x", "!r", True, Verdict.REFUSE),
        ({"dm_policy": "allowlist", "allow_from": (ALICE,)}, ALICE, "!r", True, Verdict.ADMIT),
        ({"dm_policy": "disabled", "allow_from": (ALICE,)}, ALICE, "!r", True, Verdict.REFUSE),
        ({}, ALICE, "!r", False, Verdict.REFUSE),  # rooms: not listed
        ({"groups": ("!r",)}, "@stranger:x", "!r", False, Verdict.ADMIT),
        ({"group_policy": "open"}, "@stranger:x", "!r", False, Verdict.REFUSE),
        ({"group_policy": "open", "allow_from": (ALICE,)}, ALICE, "!r", False, Verdict.ADMIT),
        ({"groups": ("*",), "allow_from": (ALICE,)}, ALICE, "!r", False, Verdict.ADMIT),
        ({"group_policy": "disabled", "groups": ("!r",)}, ALICE, "!r", False, Verdict.REFUSE),
    ],
)
def test_invites_are_joined_only_as_the_access_settings_allow(
    fields: dict[str, Any], inviter: str, room: str, direct: bool, verdict: Verdict
) -> None:
    assert decide_invite(account(**fields), inviter, room, direct, ()).verdict is verdict


def test_an_approved_sender_s_room_invite_is_joined_under_open_groups() -> None:
    decision = decide_invite(account(group_policy="open"), ALICE, "!r", False, {ALICE})
    assert decision.verdict is Verdict.ADMIT


# -- config -----------------------------------------------------------------------------


def matrix_accounts(
    table: dict[str, Any], env: dict[str, str] | None = None, home: Path = Path("/h")
):  # type: ignore[no-untyped-def]
    section = ChannelsSection.model_validate({"matrix": table})
    return resolve_accounts(section, home, env or {}).accounts


BASE = {"homeserver": "https://matrix.example.org/", "user_id": ME}


def test_an_access_token_wins_over_a_password() -> None:
    [found] = matrix_accounts({**BASE, "access_token": "syt_a", "password": "pw"})
    assert (found.secret, found.options["auth"]) == ("syt_a", "access_token")
    assert found.options["homeserver"] == "https://matrix.example.org"


def test_a_password_file_is_read_under_the_home(tmp_path: Path) -> None:
    (tmp_path / "mx.pw").write_text("hunter2\n")
    [found] = matrix_accounts({**BASE, "password_file": "mx.pw"}, home=tmp_path)
    assert (found.secret, found.options["auth"]) == ("hunter2", "password")


def test_the_default_account_reads_the_matrix_environment() -> None:
    [found] = matrix_accounts(BASE, env={"CLAWGATE_MATRIX_ACCESS_TOKEN": "syt_env"})
    assert (found.secret, found.secret_source) == (
        "syt_env",
        "environment variable CLAWGATE_MATRIX_ACCESS_TOKEN",
    )


def test_no_credential_says_which_keys_to_set() -> None:
    [found] = matrix_accounts(BASE)
    assert found.secret is None
    assert found.secret_source == "no access_token or password configured"


def test_named_accounts_inherit_all_but_the_secrets() -> None:
    found = matrix_accounts(
        {
            **BASE,
            "access_token": "syt_a",
            "accounts": {"work": {"user_id": "@w:example.org", "password_env": "W"}},
        },
        env={"W": "pw"},
    )
    assert [(a.account_id, a.secret, a.options["auth"]) for a in found] == [
        ("default", "syt_a", "access_token"),
        ("work", "pw", "password"),
    ]
    assert found[1].options["homeserver"] == "https://matrix.example.org"


def test_a_malformed_user_id_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="user_id"):
        ChannelsSection.model_validate({"matrix": {**BASE, "user_id": "bot"}})


def test_matrix_secrets_are_redacted() -> None:
    raw = {"channels": {"matrix": {**BASE, "access_token": "syt_a", "password": "pw"}}}
    shown = redact_data(raw)["channels"]["matrix"]
    assert (shown["access_token"], shown["password"]) == (REDACTED, REDACTED)
    assert ClawgateConfig.model_validate(raw).channels.configured() == ["matrix"]


def test_the_gateway_does_not_import_nio_unless_matrix_is_configured() -> None:
    code = (
        "import sys\n"
        "import clawgate.gateway.server, clawgate.channels.runtime, clawgate.service.runtime\n"
        "print('nio' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"
