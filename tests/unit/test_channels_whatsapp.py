"""WhatsApp Cloud API's pure parts: signatures, the handshake, notifications, errors, config."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from clawgate.channels.base import (
    AccountConfig,
    AuthFailed,
    ChannelError,
    ChatKind,
    PermanentSendError,
    RateLimited,
)
from clawgate.channels.manager import AccountRunner, AccountServices
from clawgate.channels.registry import spec_for
from clawgate.channels.settings import resolve_accounts
from clawgate.channels.supervision import BackoffPolicy
from clawgate.channels.whatsapp_protocol import (
    UnreadableNotification,
    classify_error,
    media_payload,
    normalize,
    parse_notification,
    signature_ok,
    text_payload,
    verification,
)
from clawgate.config import ChannelsSection
from clawgate.config_file import REDACTED, redact_data

SECRET = "app-secret-0123"
ACCOUNT = AccountConfig(channel="whatsapp", account_id="default")
TOKEN = "EAAJ-unit-access-token"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def notification(*messages: dict[str, Any], statuses: Any = None) -> bytes:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "contacts": [{"profile": {"name": "Alice"}, "wa_id": "15551230000"}],
        "messages": list(messages),
    }
    if statuses is not None:
        value["statuses"] = statuses
    change = {"field": "messages", "value": value}
    body = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
    return json.dumps(body).encode()


def text(body: str = "hi", **fields: Any) -> dict[str, Any]:
    base = {"from": "15551230000", "id": "wamid.A", "timestamp": "1700000000", "type": "text"}
    return {**base, "text": {"body": body}, **fields}


def test_a_body_signed_with_the_app_secret_is_accepted() -> None:
    assert signature_ok(SECRET, b"{}", sign(b"{}"))


@pytest.mark.parametrize(
    "header",
    [None, "", sign(b"{}", "other"), sign(b"{ }"), sign(b"{}").replace("sha256=", "sha1=")],
)
def test_a_missing_or_wrong_signature_is_refused(header: str | None) -> None:
    assert not signature_ok(SECRET, b"{}", header)


def test_no_app_secret_accepts_nothing() -> None:
    assert not signature_ok("", b"{}", sign(b"{}", ""))


def test_the_handshake_answers_the_challenge_for_the_right_token_only() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "v", "hub.challenge": "42"}
    assert verification(query, "v") == (200, "42")
    assert verification(query, "w")[0] == 403
    assert verification({**query, "hub.mode": "unsubscribe"}, "v")[0] == 403
    assert verification({"hub.challenge": "42"}, "v")[0] == 400


def test_a_text_message_becomes_a_dm_from_its_sender_with_the_contact_name() -> None:
    [message] = parse_notification(notification(text("hello"))).messages
    inbound = normalize(message, ACCOUNT)
    assert inbound is not None
    assert (inbound.chat.id, inbound.chat.kind, inbound.sender.name) == (
        "15551230000",
        ChatKind.DM,
        "Alice",
    )
    assert (inbound.message_id, inbound.received_at, inbound.mentioned) == (
        "wamid.A",
        1_700_000_000_000,
        True,
    )


def test_a_reply_carries_the_quoted_message_id() -> None:
    raw = text(context={"from": "15550000000", "id": "wamid.QUOTED"})
    [message] = parse_notification(notification(raw)).messages
    assert message.reply_to == "wamid.QUOTED"


def test_a_message_with_a_group_id_is_a_group_message_not_mentioned() -> None:
    [message] = parse_notification(notification(text(group_id="1203630"))).messages
    inbound = normalize(message, ACCOUNT)
    assert inbound is not None and inbound.chat.kind is ChatKind.GROUP
    assert inbound.chat.id == "1203630" and not inbound.mentioned


def test_an_image_carries_its_media_id_and_caption() -> None:
    raw = {**text(), "type": "image", "image": {"id": "77", "mime_type": "image/png"}}
    raw["image"]["caption"] = "look"
    [message] = parse_notification(notification(raw)).messages
    assert (message.media_id, message.mime, message.text) == ("77", "image/png", "look")


def test_statuses_are_read_with_their_first_error() -> None:
    failed = {
        "id": "wamid.S",
        "status": "failed",
        "recipient_id": "1555",
        "errors": [{"code": 131047, "title": "Re-engagement message"}],
    }
    [status] = parse_notification(notification(statuses=[failed])).statuses
    assert (status.message_id, status.status, status.error) == (
        "wamid.S",
        "failed",
        "131047 Re-engagement message",
    )


@pytest.mark.parametrize(
    "raw",
    [
        {**text(), "type": "reaction", "reaction": {"emoji": "x"}},
        {**text(), "type": "sticker"},
        text(body=""),
        {**text(), "text": {"body": 3}},
        {**text(), "timestamp": "soon"},
        {"type": "text"},
    ],
)
def test_what_cannot_be_read_is_skipped_and_counted(raw: dict[str, Any]) -> None:
    read = parse_notification(notification(raw))
    assert (read.messages, read.skipped) == ((), 1)


def test_other_objects_and_fields_are_skipped() -> None:
    assert parse_notification(b'{"object": "page"}').skipped == 1
    body = {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "x"}]}]}
    assert parse_notification(json.dumps(body).encode()).skipped == 1


@pytest.mark.parametrize("body", [b"not json", b"[1]", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_unreadable(body: bytes) -> None:
    with pytest.raises(UnreadableNotification):
        parse_notification(body)


def test_payloads_quote_only_when_replying() -> None:
    assert "context" not in text_payload("1", "hi", None)
    assert text_payload("1", "hi", "wamid.Q")["context"] == {"message_id": "wamid.Q"}
    doc = media_payload("1", "document", link="https://x/y.pdf", filename="y.pdf")
    assert doc["document"] == {"link": "https://x/y.pdf", "filename": "y.pdf"}
    image = media_payload("1", "image", media_id="5", filename="a.png", caption="c")
    assert image["image"] == {"id": "5", "caption": "c"}


def graph_error(code: int) -> dict[str, Any]:
    return {"error": {"message": "m", "type": "OAuthException", "code": code, "fbtrace_id": "A"}}


def test_a_refused_token_is_auth_failed_and_names_the_code() -> None:
    error = classify_error(401, graph_error(190), None, "whatsapp/default")
    assert isinstance(error, AuthFailed) and "code 190" in str(error)


@pytest.mark.parametrize(("status", "code"), [(429, 80007), (429, 130429), (400, 4), (400, 131056)])
def test_rate_limits_wait_retry_after_or_a_second(status: int, code: int) -> None:
    error = classify_error(status, graph_error(code), "3" if code == 80007 else None, "a")
    assert isinstance(error, RateLimited)
    assert error.retry_after_s == (3.0 if code == 80007 else 1.0)
    assert error.account_wide is (code != 131056)


def test_the_closed_24_hour_window_is_permanent() -> None:
    assert isinstance(classify_error(400, graph_error(131047), None, "a"), PermanentSendError)


def test_a_5xx_or_an_unknown_answer_is_transient() -> None:
    for error in (
        classify_error(500, graph_error(1), None, "a"),
        classify_error(502, "<html>", None, "a"),
    ):
        assert type(error) is ChannelError


def whatsapp_accounts(table: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    section = ChannelsSection.model_validate({"whatsapp": table})
    return resolve_accounts(section, Path("/h"), env or {}).accounts


def test_the_three_secrets_come_from_the_environment_by_default() -> None:
    env = {
        "CLAWGATE_WHATSAPP_ACCESS_TOKEN": TOKEN,
        "CLAWGATE_WHATSAPP_APP_SECRET": SECRET,
        "CLAWGATE_WHATSAPP_VERIFY_TOKEN": "verify-me",
    }
    [account] = whatsapp_accounts({"phone_number_id": "123"}, env)
    assert account.secret == TOKEN and account.options["app_secret"] == SECRET
    assert account.options["verify_token"] == "verify-me" and account.options["mode"] == "cloud"
    assert account.options["graph_base"] == "https://graph.facebook.com/v21.0"


def test_no_secret_shows_in_the_account_repr() -> None:
    table = {"access_token": TOKEN, "app_secret": SECRET, "verify_token": "verify-me"}
    [account] = whatsapp_accounts(table)
    shown = repr(account)
    assert TOKEN not in shown and SECRET not in shown and "verify-me" not in shown


def test_the_secrets_are_redacted_when_config_is_shown() -> None:
    table = {"access_token": TOKEN, "app_secret": SECRET, "verify_token": "v", "mode": "cloud"}
    shown = redact_data({"channels": {"whatsapp": table}})["channels"]["whatsapp"]
    assert shown == {
        "access_token": REDACTED,
        "app_secret": REDACTED,
        "verify_token": REDACTED,
        "mode": "cloud",
    }


def test_a_named_account_does_not_inherit_the_secrets() -> None:
    table = {"access_token": TOKEN, "accounts": {"shop": {"phone_number_id": "9"}}}
    accounts = {a.account_id: a for a in whatsapp_accounts(table)}
    assert accounts["shop"].secret is None and accounts["default"].secret == TOKEN


def test_each_account_resolves_by_its_own_mode() -> None:
    table = {"access_token": TOKEN, "accounts": {"me": {"mode": "web"}}}
    accounts = {a.account_id: a for a in whatsapp_accounts(table)}
    cloud, web = accounts["default"], accounts["me"]
    assert cloud.options["mode"] == "cloud" and cloud.secret == TOKEN
    assert web.options["mode"] == "web" and web.secret is None
    assert web.options["session_dir"] == "/h/whatsapp/me"


def test_the_mode_picks_the_adapter_and_the_extra_to_install() -> None:
    cloud, web = spec_for("whatsapp", "cloud"), spec_for("whatsapp", "web")
    assert cloud is not None and web is not None
    assert (cloud.module, cloud.extra, cloud.credential_required) == (
        "clawgate.channels.whatsapp",
        "whatsapp",
        True,
    )
    assert (web.module, web.extra, web.credential_required) == (
        "clawgate.channels.whatsapp_web",
        "whatsapp-web",
        False,
    )
    telegram = spec_for("telegram", "webhook")
    assert telegram is not None and telegram.cls == "TelegramAdapter"


def test_an_error_shown_for_the_account_masks_all_three_secrets() -> None:
    env = {
        "CLAWGATE_WHATSAPP_ACCESS_TOKEN": TOKEN,
        "CLAWGATE_WHATSAPP_APP_SECRET": SECRET,
        "CLAWGATE_WHATSAPP_VERIFY_TOKEN": "verify-me",
    }
    [account] = whatsapp_accounts({"phone_number_id": "123"}, env)
    assert set(account.secrets()) == {TOKEN, SECRET, "verify-me"}
    services = AccountServices(
        deliver=lambda _: asyncio.sleep(0),
        load_cursor=lambda _: asyncio.sleep(0, None),
        save_cursor=lambda *_: asyncio.sleep(0),
        add_webhook=lambda *_: "",
        remove_webhook=lambda _: None,
        media_root=Path("/h/media"),
        clock=lambda: 0,
        backoff=BackoffPolicy(),
    )
    shown = AccountRunner(account, services).scrub(f"boom {TOKEN} {SECRET} verify-me")
    assert shown == "boom *** *** ***"
