"""hub.toml and its environment overrides (control-plane spec §7)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from clawgate.hub.settings import HubSettingsError, load_settings


def test_first_run_creates_a_private_file_with_an_admin_token(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    settings = load_settings(path, environ={})
    assert settings.generated
    assert path.stat().st_mode & 0o777 == 0o600
    assert settings.admin_token in path.read_text()
    assert (settings.host, settings.port) == ("127.0.0.1", 18800)
    assert settings.db_path == tmp_path / "hub.db"
    assert settings.secrets_key is None
    again = load_settings(path, environ={})
    assert not again.generated
    assert again.admin_token == settings.admin_token


def test_environment_overrides_the_file_and_flags_override_both(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    env = {
        "CLAWGATE_HUB_LISTEN": "0.0.0.0:19000",
        "CLAWGATE_HUB_DATABASE_URL": f"sqlite:///{tmp_path}/other.db",
        "CLAWGATE_HUB_ADMIN_TOKEN": "x" * 32,
        "CLAWGATE_HUB_SECRETS_KEY": key,
    }
    settings = load_settings(tmp_path / "hub.toml", environ=env)
    assert (settings.host, settings.port) == ("0.0.0.0", 19000)
    assert settings.db_path == tmp_path / "other.db"
    assert settings.admin_token == "x" * 32
    assert settings.secrets_key == base64.b64decode(key)
    flagged = load_settings(tmp_path / "hub.toml", environ=env, db=tmp_path / "f.db", port=1)
    assert (flagged.db_path, flagged.port) == (tmp_path / "f.db", 1)


def test_bus_url_without_postgres_is_refused_saying_why(tmp_path: Path) -> None:
    with pytest.raises(HubSettingsError) as caught:
        load_settings(tmp_path / "hub.toml", environ={"CLAWGATE_HUB_BUS_URL": "nats://x"})
    assert "needs a PostgreSQL --database-url" in str(caught.value)
    assert "share their state only through PostgreSQL" in str(caught.value)


def test_bus_url_flag_with_a_sqlite_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HubSettingsError, match="needs a PostgreSQL"):
        load_settings(
            tmp_path / "hub.toml",
            environ={},
            database_url=f"sqlite:///{tmp_path}/hub.db",
            bus_url="nats://127.0.0.1:4222",
        )


def test_postgres_without_a_secrets_key_is_refused(tmp_path: Path) -> None:
    env = {"CLAWGATE_HUB_DATABASE_URL": "postgresql://db/hub"}
    with pytest.raises(HubSettingsError, match="needs a secrets key"):
        load_settings(tmp_path / "hub.toml", environ=env)


def test_postgres_and_nats_urls_are_taken_with_a_key(tmp_path: Path) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    old = base64.b64encode(os.urandom(32)).decode()
    env = {"CLAWGATE_HUB_SECRETS_KEY": key, "CLAWGATE_HUB_PREVIOUS_SECRETS_KEYS": old}
    settings = load_settings(
        tmp_path / "hub.toml",
        environ=env,
        database_url="postgresql://hub:pw@db.example/hub",
        bus_url="nats://127.0.0.1:4222",
    )
    assert settings.database_url == "postgresql://hub:pw@db.example/hub"
    assert settings.bus_url == "nats://127.0.0.1:4222"
    assert settings.clustered
    assert settings.previous_secrets_keys == (base64.b64decode(old),)
    assert "pw" not in settings.database
    assert "pw" not in repr(settings)


def test_an_unknown_database_scheme_names_the_choices(tmp_path: Path) -> None:
    env = {"CLAWGATE_HUB_DATABASE_URL": "mysql://db/hub"}
    with pytest.raises(HubSettingsError, match="postgresql://"):
        load_settings(tmp_path / "hub.toml", environ=env)


def test_bad_secrets_key_is_refused_without_echo(tmp_path: Path) -> None:
    env = {"CLAWGATE_HUB_SECRETS_KEY": "too-short-secret-key"}
    with pytest.raises(HubSettingsError) as caught:
        load_settings(tmp_path / "hub.toml", environ=env)
    assert "too-short-secret-key" not in str(caught.value)
    assert "openssl rand -base64 32" in str(caught.value)


def test_loose_file_mode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    load_settings(path, environ={})
    path.chmod(0o644)
    with pytest.raises(HubSettingsError, match="chmod 600"):
        load_settings(path, environ={})


def test_bad_listen_value_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(HubSettingsError, match="CLAWGATE_HUB_LISTEN"):
        load_settings(tmp_path / "hub.toml", environ={"CLAWGATE_HUB_LISTEN": "nowhere"})


def test_settings_defaults_mirror_the_wire_module() -> None:
    from clawgate.hub import settings
    from clawgate.protocol import control_link

    assert settings.DEFAULT_HEARTBEAT_MS == control_link.DEFAULT_HEARTBEAT_MS
    assert settings.DEFAULT_MAX_MESSAGE_BYTES == control_link.DEFAULT_MAX_MESSAGE_BYTES
