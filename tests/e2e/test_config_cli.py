"""`clawgate config path|show|get|set|validate` on a real home."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.e2e.test_cli import run_cli

TOKEN = "config-cli-token-0123456789abcdef"
CONFIG = f"""# top comment
[gateway]
port = 18790 # the port

[gateway.auth]
token = "{TOKEN}"
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text(CONFIG)
    (home / "config.toml").chmod(0o600)
    return home


def test_path(home: Path) -> None:
    assert run_cli(home, "config", "path").stdout.strip() == str(home / "config.toml")


def test_show_redacts_secrets(home: Path) -> None:
    shown = run_cli(home, "config", "show")
    assert shown.returncode == 0 and "# the port" in shown.stdout
    assert TOKEN not in shown.stdout and "__OPENCLAW_REDACTED__" in shown.stdout
    effective = json.loads(run_cli(home, "config", "show", "--json").stdout)
    assert effective["gateway"]["port"] == 18790 and effective["log"]["level"] == "info"
    assert effective["gateway"]["auth"]["token"] == "__OPENCLAW_REDACTED__"


def test_get_values(home: Path) -> None:
    assert run_cli(home, "config", "get", "gateway.port").stdout.strip() == "18790"
    assert run_cli(home, "config", "get", "gateway.auth.token").stdout.strip() == TOKEN
    missing = run_cli(home, "config", "get", "gateway.nope")
    assert missing.returncode == 2 and "unknown key 'gateway.nope'" in missing.stderr


def test_set_keeps_comments_and_mode(home: Path) -> None:
    result = run_cli(home, "config", "set", "gateway.port", "18795")
    assert result.returncode == 0, result.stderr
    text = (home / "config.toml").read_text()
    assert "# top comment" in text and "# the port" in text and "port = 18795" in text
    assert stat.S_IMODE((home / "config.toml").stat().st_mode) == 0o600
    assert run_cli(home, "config", "set", "log.level", "debug").returncode == 0
    assert run_cli(home, "config", "get", "log.level").stdout.strip() == "debug"


def test_set_rejects_bad_values_and_keys(home: Path) -> None:
    wrong_type = run_cli(home, "config", "set", "gateway.port", "many")
    assert wrong_type.returncode == 2 and "gateway.port" in wrong_type.stderr
    unknown = run_cli(home, "config", "set", "gateway.prot", "1")
    assert unknown.returncode == 2 and "unknown key" in unknown.stderr
    assert (home / "config.toml").read_text() == CONFIG


def test_validate(home: Path) -> None:
    assert run_cli(home, "config", "validate").returncode == 0
    (home / "config.toml").write_text("[gateway]\nport = 1\nbogus = true\n")
    bad = run_cli(home, "config", "validate")
    assert bad.returncode == 2
    assert "config.toml:3: unknown key 'gateway.bogus'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_environment_overrides_win_and_are_never_written(home: Path) -> None:
    got = run_cli(home, "config", "get", "auth.api_key", CLAWGATE_API_KEY="env-api-key-123456")
    assert got.stdout.strip() == "env-api-key-123456"
    level = run_cli(home, "config", "get", "log.level", CLAWGATE_LOG_LEVEL="debug")
    assert level.stdout.strip() == "debug"
    shown = run_cli(home, "config", "show", "--json", CLAWGATE_API_KEY="env-api-key-123456")
    assert "env-api-key-123456" not in shown.stdout
    assert json.loads(shown.stdout)["auth"]["api_key"] == "__OPENCLAW_REDACTED__"
    bad = run_cli(home, "config", "get", "log.level", CLAWGATE_LOG_LEVEL="loud")
    assert bad.returncode == 2 and "CLAWGATE" not in bad.stdout
    assert "env-api-key-123456" not in (home / "config.toml").read_text()


def test_get_shows_the_http_slow_client_keys(home: Path) -> None:
    timeout = run_cli(home, "config", "get", "gateway.http_read_timeout_ms")
    assert timeout.returncode == 0 and timeout.stdout.strip() == "10000"
    cap = run_cli(home, "config", "get", "gateway.http_max_connections_per_ip")
    assert cap.returncode == 0 and cap.stdout.strip() == "64"
