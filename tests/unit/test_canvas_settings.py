"""`[canvas]` in config.toml resolved into the gateway's settings (service/runtime.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawgate.canvas.settings import CanvasSettings
from clawgate.config import ClawgateConfig, ConfigError
from clawgate.protocol.auth import AuthMode
from clawgate.service.paths import Paths
from clawgate.service.runtime import GatewayOverrides, resolve_settings

TOKEN = GatewayOverrides(token="t")


def resolve(
    home: Path, canvas: dict[str, object], overrides: GatewayOverrides = TOKEN
) -> CanvasSettings | None:
    config = ClawgateConfig.model_validate({"canvas": canvas})
    return resolve_settings(config, Paths(home), overrides)[0].canvas


def test_the_canvas_is_off_by_default(tmp_path: Path) -> None:
    assert resolve(tmp_path, {}) is None


def test_an_enabled_canvas_serves_the_homes_canvas_folder_on_loopback(tmp_path: Path) -> None:
    canvas = resolve(tmp_path, {"enabled": True})
    assert canvas is not None
    assert (canvas.root, canvas.host, canvas.port, canvas.live_reload) == (
        tmp_path / "canvas",
        "127.0.0.1",
        18793,
        True,
    )


def test_a_relative_root_is_under_the_home_and_an_absolute_one_is_kept(tmp_path: Path) -> None:
    relative = resolve(tmp_path, {"enabled": True, "root": "pages"})
    absolute = resolve(tmp_path, {"enabled": True, "root": str(tmp_path / "elsewhere")})
    assert relative is not None and relative.root == tmp_path / "pages"
    assert absolute is not None and absolute.root == tmp_path / "elsewhere"


def test_bind_lan_listens_on_every_address(tmp_path: Path) -> None:
    canvas = resolve(tmp_path, {"enabled": True, "bind": "lan", "port": 0})
    assert canvas is not None and (canvas.host, canvas.port) == ("0.0.0.0", 0)


def test_a_canvas_beyond_loopback_without_auth_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"refusing to serve the canvas on 0\.0\.0\.0"):
        resolve(tmp_path, {"enabled": True, "bind": "lan"}, GatewayOverrides(auth=AuthMode.NONE))


def test_a_bad_bind_names_the_canvas_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^\[canvas\] bind must be"):
        resolve(tmp_path, {"enabled": True, "bind": "everywhere"})
