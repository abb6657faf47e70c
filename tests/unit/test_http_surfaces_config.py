"""`[http.openai]` and `[hooks]`: defaults off, validation, secrets resolved and redacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from clawgate.config import ClawgateConfig, ConfigError
from clawgate.config_file import REDACTED, redact_data, redact_raw
from clawgate.service.paths import Paths
from clawgate.service.runtime import GatewayOverrides, resolve_settings

GATEWAY_TOKEN = "gateway-token-0123456789abcdef"
HOOK_TOKEN = "hook-token-0123456789abcdef"


def _settings(tmp_path: Path, data: dict[str, object]) -> object:
    config = ClawgateConfig.model_validate(data)
    overrides = GatewayOverrides(token=GATEWAY_TOKEN)
    return resolve_settings(config, Paths(tmp_path), overrides)[0]


def test_both_surfaces_are_off_by_default() -> None:
    config = ClawgateConfig()
    assert not config.http.openai.enabled and not config.hooks.enabled
    assert config.http.openai.max_body_bytes == 1024 * 1024
    assert config.hooks.max_body_bytes == 256 * 1024 and config.hooks.path == "/hooks"


def test_enabled_hooks_need_a_token_and_no_reserved_names() -> None:
    with pytest.raises(ValueError, match="need a token"):
        ClawgateConfig.model_validate({"hooks": {"enabled": True}})
    with pytest.raises(ValueError, match="reserved"):
        ClawgateConfig.model_validate({"hooks": {"mappings": {"wake": {"template": "x"}}}})
    with pytest.raises(ValueError, match="not an address"):
        ClawgateConfig.model_validate(
            {"hooks": {"mappings": {"m": {"template": "x", "allow_from": ["nowhere"]}}}}
        )


def test_hook_token_must_differ_from_the_gateway_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must differ"):
        _settings(tmp_path, {"hooks": {"enabled": True, "token": GATEWAY_TOKEN}})


def test_hook_secrets_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks = {
        "enabled": True,
        "token": HOOK_TOKEN,
        "mappings": {"github": {"template": "x", "secret_env": "TEST_GH_SECRET"}},
    }
    monkeypatch.delenv("TEST_GH_SECRET", raising=False)
    with pytest.raises(ConfigError, match="TEST_GH_SECRET"):
        _settings(tmp_path, {"hooks": hooks})
    monkeypatch.setenv("TEST_GH_SECRET", "from-env")
    settings = _settings(tmp_path, {"hooks": hooks})
    assert settings.hook_secrets == {"github": "from-env"}  # type: ignore[attr-defined]
    assert "from-env" not in repr(settings) and HOOK_TOKEN not in repr(settings)


def test_hook_token_is_redacted_wherever_config_is_shown() -> None:
    raw = f'[hooks]\nenabled = true\ntoken = "{HOOK_TOKEN}"\n'
    assert HOOK_TOKEN not in redact_raw(raw) and REDACTED in redact_raw(raw)
    data = {"hooks": {"enabled": True, "token": HOOK_TOKEN}}
    assert redact_data(data)["hooks"]["token"] == REDACTED
