"""`[channels.*]` config: accounts, secrets, redaction (channels/settings.py, config_file.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawgate.channels.registry import ADAPTERS, AdapterSpec, MissingExtra, load_adapter
from clawgate.channels.settings import resolve_accounts
from clawgate.config import ChannelsSection, ClawgateConfig
from clawgate.config_file import REDACTED, redact_data, redact_raw, restore_secrets

TOKEN = "123:secret-token"


def accounts(table: dict[str, object], home: Path = Path("/h"), env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    section = ChannelsSection.model_validate({"telegram": table})
    return resolve_accounts(section, home, env or {}).accounts


def test_no_channel_table_means_no_channel() -> None:
    assert ClawgateConfig().channels.configured() == []


def test_defaults_are_closed() -> None:
    [account] = accounts({"token": TOKEN})
    assert (account.dm_policy, account.group_policy, account.require_mention) == (
        "pairing",
        "allowlist",
        True,
    )
    assert account.options["api_base"] == "https://api.telegram.org"


def test_named_accounts_inherit_and_override() -> None:
    found = accounts(
        {
            "token": TOKEN,
            "allow_from": ["1"],
            "accounts": {"work": {"token": "9:w", "dm_policy": "open"}},
        }
    )
    assert [a.account_id for a in found] == ["default", "work"]
    work = found[1]
    assert (work.secret, work.dm_policy, work.allow_from) == ("9:w", "open", ("1",))


def test_a_named_account_does_not_inherit_the_default_token() -> None:
    found = accounts({"accounts": {"work": {"token_env": "WORK_TOKEN"}}}, env={"WORK_TOKEN": "5:x"})
    assert [(a.account_id, a.secret) for a in found] == [("work", "5:x")]


def test_token_file_is_read_relative_to_the_home(tmp_path: Path) -> None:
    (tmp_path / "tg.token").write_text(TOKEN + "\n")
    [account] = accounts({"token_file": "tg.token"}, home=tmp_path)
    assert account.secret == TOKEN


def test_the_default_account_reads_the_environment() -> None:
    [account] = accounts({}, env={"CLAWGATE_TELEGRAM_TOKEN": TOKEN})
    assert account.secret == TOKEN


def test_a_reserved_account_name_is_refused() -> None:
    with pytest.raises(ValueError, match="reserved"):
        accounts({"accounts": {"dm": {}}})


def test_channel_tokens_are_redacted_everywhere() -> None:
    raw = (
        f'[channels.telegram]\ntoken = "{TOKEN}"\n'
        '[channels.telegram.accounts.work]\ntoken = "9:w"\n'
    )
    data = {"channels": {"telegram": {"token": TOKEN, "accounts": {"work": {"token": "9:w"}}}}}
    redacted = redact_data(data)
    assert redacted["channels"]["telegram"]["token"] == REDACTED
    assert redacted["channels"]["telegram"]["accounts"]["work"]["token"] == REDACTED
    assert TOKEN not in redact_raw(raw) and "9:w" not in redact_raw(raw)


def test_a_redacted_channel_token_written_back_keeps_its_value() -> None:
    import tomlkit

    document = tomlkit.parse(f'[channels.telegram]\ntoken = "{REDACTED}"\n')
    restore_secrets(document, {"channels": {"telegram": {"token": TOKEN}}})
    assert document["channels"]["telegram"]["token"] == TOKEN  # type: ignore[index]


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        ADAPTERS, "nochat", AdapterSpec("clawgate_no_such_sdk", "X", "nochat", "nosdk")
    )
    with pytest.raises(MissingExtra, match=r"pip install 'clawgate\[nochat\]'"):
        load_adapter("nochat")
