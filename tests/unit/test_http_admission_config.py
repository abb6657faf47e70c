"""`[gateway] http_read_timeout_ms` and `http_max_connections_per_ip`: read, bounded, explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawgate.config import ConfigError, load_config
from clawgate.protocol.limits import Limits


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text("[gateway]\n" + body)
    return path


def test_the_slow_client_keys_default_to_ten_seconds_and_64_connections(tmp_path: Path) -> None:
    limits = load_config(_config(tmp_path, "")).limits()
    assert limits.http_read_timeout_ms == 10_000 and limits.http_max_connections_per_ip == 64


def test_the_slow_client_keys_set_the_gateways_limits(tmp_path: Path) -> None:
    body = "http_read_timeout_ms = 5000\nhttp_max_connections_per_ip = 16\n"
    limits = load_config(_config(tmp_path, body)).limits()
    assert limits.http_read_timeout_ms == 5_000 and limits.http_max_connections_per_ip == 16


def test_a_read_timeout_out_of_range_names_the_key_and_the_bound(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'gateway.http_read_timeout_ms'.*1000") as error:
        load_config(_config(tmp_path, "http_read_timeout_ms = 500\n"))
    assert "\n" not in str(error.value)


def test_a_per_address_cap_below_a_browsers_share_names_the_key_and_the_bound(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match=r"'gateway.http_max_connections_per_ip'.*8"):
        load_config(_config(tmp_path, "http_max_connections_per_ip = 2\n"))


def test_limits_refuse_a_read_timeout_out_of_range() -> None:
    with pytest.raises(ValueError, match="HTTP read timeout"):
        Limits(http_read_timeout_ms=999)
