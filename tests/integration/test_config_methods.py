"""`config.get|set|patch|schema` over the wire: redaction, baseHash, validation, hot reload."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest

from clawgate.client import GatewayCallError, GatewayClient
from clawgate.config_file import REDACTED
from clawgate.protocol.auth import AuthMode, SharedSecretAuth
from tests.conftest import GatewayFactory, RunningGateway

TOKEN = "file-token-0123456789-abcdefghij"
CONFIG = f"""# my settings
[gateway]
port = 18789  # keep this comment

[gateway.auth]
token = "{TOKEN}"

[auth]
api_key = "api-key-secret-value"
"""


@pytest.fixture
async def configured(gateway_factory: GatewayFactory, tmp_path: Path) -> RunningGateway:
    config_path = tmp_path / "config.toml"
    config_path.write_text(CONFIG)
    config_path.chmod(0o600)
    return await gateway_factory(
        auth=SharedSecretAuth(AuthMode.TOKEN, TOKEN), config_path=config_path
    )


def client(gateway: RunningGateway, token: str = TOKEN, **kwargs: object) -> GatewayClient:
    return GatewayClient(gateway.url, token=token, **kwargs)  # type: ignore[arg-type]


async def test_get_redacts_every_secret_for_every_caller(configured: RunningGateway) -> None:
    async with client(configured, scopes=("operator.read",)) as reader:
        result = await reader.call("config.get")
    assert TOKEN not in str(result) and "api-key-secret-value" not in str(result)
    assert result["parsed"]["gateway"]["auth"]["token"] == REDACTED
    assert result["parsed"]["auth"]["api_key"] == REDACTED
    assert "# keep this comment" in result["raw"] and REDACTED in result["raw"]
    assert result["valid"] is True and result["exists"] is True and "path" not in result
    async with client(configured) as admin:
        assert (await admin.call("config.get"))["path"].endswith("config.toml")


async def test_set_needs_admin(configured: RunningGateway) -> None:
    async with client(configured, scopes=("operator.read",)) as reader:
        with pytest.raises(GatewayCallError) as caught:
            await reader.call("config.set", {"raw": ""})
    assert caught.value.code == "FORBIDDEN"


async def test_stale_base_hash_writes_nothing(configured: RunningGateway) -> None:
    path = configured.server.settings.config_path
    assert path is not None
    async with client(configured) as admin:
        current = await admin.call("config.get")
        with pytest.raises(GatewayCallError) as caught:
            await admin.call("config.set", {"raw": "", "baseHash": "0" * 64})
    assert caught.value.details == {"code": "BASE_HASH_MISMATCH", "currentHash": current["hash"]}
    assert path.read_text() == CONFIG


async def test_invalid_config_lists_issues_and_writes_nothing(configured: RunningGateway) -> None:
    path = configured.server.settings.config_path
    assert path is not None
    async with client(configured) as admin:
        with pytest.raises(GatewayCallError) as caught:
            await admin.call("config.patch", {"raw": '{"gateway": {"prot": 1}}'})
    assert caught.value.details["code"] == "INVALID_CONFIG"
    assert caught.value.details["issues"] == [{"path": "gateway.prot", "message": "unknown key"}]
    assert path.read_text() == CONFIG


async def test_patch_keeps_comments_secrets_and_reports_restart(
    configured: RunningGateway,
) -> None:
    path = configured.server.settings.config_path
    assert path is not None
    async with client(configured) as admin:
        before = await admin.call("config.get")
        result = await admin.call(
            "config.patch",
            {
                "raw": '{"gateway": {"port": 18800}, "log": {"level": "debug"}}',
                "baseHash": before["hash"],
            },
        )
        assert result["ok"] is True and result["restartRequired"] is True
        assert result["hash"] != before["hash"]
        text = path.read_text()
        assert "# keep this comment" in text and TOKEN in text
        assert tomllib.loads(text)["gateway"]["port"] == 18800
        level_only = await admin.call("config.patch", {"raw": '{"log": {"level": "info"}}'})
        assert level_only["restartRequired"] is False
    assert oct(path.stat().st_mode & 0o777) == "0o600"


async def test_set_with_sentinel_keeps_the_current_secret(configured: RunningGateway) -> None:
    path = configured.server.settings.config_path
    assert path is not None
    async with client(configured) as admin:
        shown = await admin.call("config.get")
        await admin.call("config.set", {"raw": shown["raw"].replace("18789", "18790")})
    data = tomllib.loads(path.read_text())
    assert data["gateway"]["auth"]["token"] == TOKEN
    assert data["auth"]["api_key"] == "api-key-secret-value"


async def test_patch_null_deletes_and_token_mode_needs_a_token(configured: RunningGateway) -> None:
    async with client(configured) as admin:
        with pytest.raises(GatewayCallError) as caught:
            await admin.call("config.patch", {"raw": '{"gateway": {"auth": {"token": null}}}'})
        assert caught.value.details["issues"][0]["path"] == "gateway.auth.token"
        await admin.call("config.patch", {"raw": '{"auth": null}'})
        assert "auth" not in (await admin.call("config.get"))["parsed"]


async def test_changing_the_token_closes_sockets_with_4001(configured: RunningGateway) -> None:
    new_token = "rotated-token-abcdefghijklmnop-0123"
    watcher = client(configured, scopes=("operator.read",))
    await watcher.connect()
    async with client(configured) as admin:
        result = await admin.request(
            "config.patch", {"raw": f'{{"gateway": {{"auth": {{"token": "{new_token}"}}}}}}'}
        )
        assert result.ok is True  # the answer is written before the close
    await watcher.close()
    assert watcher.close_code == 4001
    with pytest.raises(GatewayCallError):
        async with client(configured):
            pass
    async with client(configured, token=new_token) as fresh:
        assert (await fresh.call("health"))["ok"] is True


async def test_writes_are_rate_limited(configured: RunningGateway) -> None:
    async with client(configured) as admin:
        for level in ("debug", "info", "debug"):
            await admin.call("config.patch", {"raw": f'{{"log": {{"level": "{level}"}}}}'})
        with pytest.raises(GatewayCallError) as caught:
            await admin.call("config.patch", {"raw": '{"log": {"level": "info"}}'})
    assert caught.value.details == {"code": "RATE_LIMITED"}
    assert caught.value.retryable is True and caught.value.retry_after_ms > 0


async def test_schema_describes_the_config_model(configured: RunningGateway) -> None:
    async with client(configured, scopes=("operator.read",)) as reader:
        answer = await reader.call("config.schema")
        lookup = await reader.call("config.schema.lookup", {"path": "gateway.auth"})
    schema = answer["schema"]
    assert "gateway" in schema["properties"] and schema["additionalProperties"] is False
    assert answer["uiHints"]["gateway.auth.token"] == {"sensitive": True}
    assert answer["version"] and answer["generatedAt"]
    assert {c["key"] for c in lookup["children"]} >= {"mode", "token", "password"}


async def test_patch_must_be_a_json_object(configured: RunningGateway) -> None:
    async with client(configured) as admin:
        with pytest.raises(GatewayCallError) as caught:
            await admin.call("config.patch", {"raw": "[1]"})
    assert "JSON text of an object" in caught.value.message


async def test_an_invalid_file_is_not_shown_at_all(configured: RunningGateway) -> None:
    path = configured.server.settings.config_path
    assert path is not None
    path.write_text('[gateway]\ntokne = "misplaced-secret-value"\n')
    async with client(configured, scopes=("operator.read",)) as reader:
        result = await reader.call("config.get")
    assert result["valid"] is False and result["raw"] == "" and result["parsed"] == {}
    assert "misplaced-secret-value" not in str(result)
    assert result["issues"] == [{"path": "gateway.tokne", "message": "unknown key"}]


async def test_concurrent_writes_cannot_pass_the_rate_limit(configured: RunningGateway) -> None:
    async with client(configured) as admin:
        answers = await asyncio.gather(
            *(
                admin.request("config.patch", {"raw": f'{{"log": {{"level": "{level}"}}}}'})
                for level in ("debug", "info", "debug", "info", "debug")
            )
        )
    assert sum(answer.ok for answer in answers) == 3
