"""`[channels.irc]`: defaults, the optional password, redaction (channels/settings.py)."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from clawgate.channels.registry import ADAPTERS
from clawgate.channels.settings import resolve_accounts
from clawgate.config import ChannelsSection
from clawgate.config_file import REDACTED, redact_data


def accounts(table: dict[str, object], env: dict[str, str] | None = None, home: Path = Path("/h")):  # type: ignore[no-untyped-def]
    section = ChannelsSection.model_validate({"irc": table})
    return resolve_accounts(section, home, env or {}).accounts


def test_defaults_are_tls_on_6697_closed_and_need_no_password() -> None:
    [account] = accounts({"server": "irc.example.org"})
    options = account.options
    assert (options["tls"], options["tls_verify"], options["port"]) == (True, True, 6697)
    assert (account.dm_policy, account.group_policy, account.require_mention) == (
        "pairing",
        "allowlist",
        True,
    )
    assert account.secret is None and "none needed" in account.secret_source
    assert ADAPTERS["irc"].credential_required is False


def test_plain_text_defaults_to_6667() -> None:
    [account] = accounts({"server": "irc.example.org", "tls": False})
    assert account.options["port"] == 6667


def test_joined_channels_are_the_allowed_groups_unless_groups_says_otherwise() -> None:
    [joined] = accounts({"server": "s", "channels": ["#Room", "#other"]})
    assert joined.groups == ("#room", "#other")
    [narrowed] = accounts({"server": "s", "channels": ["#room", "#other"], "groups": ["#room"]})
    assert narrowed.groups == ("#room",)


def test_allowed_nicks_are_folded_like_sender_ids_and_accounts_kept() -> None:
    [account] = accounts({"server": "s", "allow_from": ["Alice", "account:Bob", "*"]})
    assert account.allow_from == ("alice", "account:Bob", "*")


def test_the_password_comes_from_a_file_or_the_environment(tmp_path: Path) -> None:
    (tmp_path / "irc.pw").write_text("from-file\n")
    [filed] = accounts({"server": "s", "password_file": "irc.pw"}, home=tmp_path)
    assert filed.secret == "from-file"
    [env] = accounts({"server": "s"}, env={"CLAWGATE_IRC_PASSWORD": "from-env"})
    assert env.secret == "from-env"


def test_sasl_uses_the_nick_as_account_unless_named() -> None:
    [account] = accounts({"server": "s", "nick": "helper", "sasl": True, "password": "pw"})
    assert (account.options["sasl"], account.options["sasl_username"]) == (True, "helper")


def test_a_server_is_required() -> None:
    with pytest.raises(pydantic.ValidationError, match="server is required"):
        accounts({"nick": "helper"})


@pytest.mark.parametrize("nick", ["9starts-with-digit", "has space", "x" * 31])
def test_an_invalid_nick_is_refused_at_load(nick: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        accounts({"server": "s", "nick": nick})


def test_the_password_is_redacted() -> None:
    data = {
        "channels": {"irc": {"server": "s", "password": "pw", "accounts": {"b": {"password": "x"}}}}
    }
    shown = redact_data(data)
    assert shown["channels"]["irc"]["password"] == REDACTED
    assert shown["channels"]["irc"]["accounts"]["b"]["password"] == REDACTED
