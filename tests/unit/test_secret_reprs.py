"""Objects that hold a secret never show it in their repr (logs, tracebacks, debuggers)."""

from __future__ import annotations

from pathlib import Path

from clawgate.config import ApiAuthSection, AuthSettings
from clawgate.hub.core import CommandInput
from clawgate.hub.settings import HubSettings
from clawgate.protocol.auth import AuthMode, SharedSecretAuth
from clawgate.protocol.connect import AuthParams
from clawgate.protocol.hello import HelloAuth

SECRET = "s3cret-value-0123456789"


def test_shared_secret_auth_hides_the_secret() -> None:
    assert SECRET not in repr(SharedSecretAuth(AuthMode.TOKEN, SECRET))


def test_config_auth_sections_hide_tokens_passwords_and_api_keys() -> None:
    assert SECRET not in repr(AuthSettings(token=SECRET, password=SECRET))
    assert SECRET not in repr(ApiAuthSection(api_key=SECRET))


def test_connect_auth_params_hide_every_credential() -> None:
    params = AuthParams(token=SECRET, password=SECRET, deviceToken=SECRET, bootstrapToken=SECRET)
    assert SECRET not in repr(params)


def test_hello_auth_hides_the_issued_device_token() -> None:
    assert SECRET not in repr(HelloAuth(role="operator", scopes=(), device_token=SECRET))


def test_hub_settings_and_command_input_hide_tokens_and_secrets() -> None:
    settings = HubSettings(config_path=Path("h.toml"), db_path=Path("h.db"), admin_token=SECRET)
    assert SECRET not in repr(settings)
    command = CommandInput(name="x.run", target={"plugin": "p"}, secrets={"key": SECRET})
    assert SECRET not in repr(command)
