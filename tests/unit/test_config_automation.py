"""The `[heartbeat]`, `[cron]` and `[gateway] timezone` settings, and the deprecated alias."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawgate.config import ConfigError, load_config, with_env_overrides
from clawgate.gateway.heartbeat import heartbeat_settings


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_heartbeat_every_takes_a_duration(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, '[heartbeat]\nevery = "1h30m"\n'))
    assert config.heartbeat_every_s() == 5400 and config.deprecations() == []


def test_the_default_cadence_is_thirty_minutes(tmp_path: Path) -> None:
    assert load_config(tmp_path / "missing.toml").heartbeat_every_s() == 1800


def test_the_old_key_still_works_and_says_what_to_write_instead(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, "[gateway]\nheartbeat_every_s = 600\n"))
    assert config.heartbeat_every_s() == 600
    assert config.deprecations() == [
        '[gateway] heartbeat_every_s is deprecated; write [heartbeat] every = "10m"'
    ]


def test_the_new_key_wins_over_the_old_one(tmp_path: Path) -> None:
    text = '[gateway]\nheartbeat_every_s = 600\n\n[heartbeat]\nevery = "2h"\n'
    config = with_env_overrides(load_config(config_file(tmp_path, text)), {})
    assert config.heartbeat_every_s() == 7200
    assert "ignored" in config.deprecations()[0]


def test_an_unknown_time_zone_is_refused_where_it_is_written(tmp_path: Path) -> None:
    path = config_file(tmp_path, '[gateway]\ntimezone = "Europe/Atlantis"\n')
    with pytest.raises(
        ConfigError, match=r"config.toml:2: invalid value for 'gateway.timezone'.*unknown time zone"
    ):
        load_config(path)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('every = "soon"', "is not a duration"),
        ('active_hours = "9-5"', "HH:MM-HH:MM"),
        ('channel = "telegram"', "set both channel and to"),
    ],
)
def test_a_bad_heartbeat_setting_says_how_to_write_it(tmp_path: Path, line: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        load_config(config_file(tmp_path, f"[heartbeat]\n{line}\n"))


def test_the_heartbeat_target_is_a_webchat_session_or_a_channel_peer(tmp_path: Path) -> None:
    text = '[heartbeat]\ntarget = "ops"\nactive_hours = "08:00-22:00"\nack_token = "QUIET"\n'
    settings = heartbeat_settings(load_config(config_file(tmp_path, text)))
    assert (settings.target.channel, settings.target.to) == ("webchat", "agent:main:ops")
    assert str(settings.active_hours) == "08:00-22:00" and settings.ack_token == "QUIET"
    peer = '[heartbeat]\nchannel = "telegram"\nto = "12345"\n'
    settings = heartbeat_settings(load_config(config_file(tmp_path, peer)))
    assert (settings.target.channel, settings.target.to) == ("telegram", "12345")


def test_cron_can_be_switched_off(tmp_path: Path) -> None:
    assert load_config(config_file(tmp_path, "[cron]\nenabled = false\n")).cron.enabled is False
