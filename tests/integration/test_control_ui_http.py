"""A Control UI bundle served at /control/ over real HTTP (`[gateway] control_ui_root`)."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from clawgate.config import AgentSection
from tests.conftest import GatewayFactory, RunningGateway

INDEX = """<!doctype html>
<html data-openclaw-control-ui-build-id="b1" lang="en">
  <head>
    <link rel="icon" href="./favicon.svg" />
    <script>globalThis.boot = 1;</script>
    <script type="module" crossorigin src="./assets/app-1234.js"></script>
  </head>
  <body><openclaw-app></openclaw-app></body>
</html>
"""
APP = "console.log('control ui');\n" * 40


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A tiny stand-in for OpenClaw's dist/control-ui: an index, a script, its .gz."""
    root = tmp_path / "control-ui"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / "assets" / "app-1234.js").write_text(APP)
    (root / "assets" / "app-1234.js.gz").write_bytes(gzip.compress(APP.encode()))
    (tmp_path / "secret.txt").write_text("outside the root")
    return root


@pytest.fixture
async def served(gateway_factory: GatewayFactory, bundle: Path) -> RunningGateway:
    """A gateway serving the bundle, its agent named and pictured."""
    agent = AgentSection(name="Claw", avatar="https://example.invalid/a.png")
    return await gateway_factory(control_ui_root=bundle, agent=agent)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session that does not follow redirects by itself."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def test_every_client_side_route_gets_the_index_with_the_mount_stamped(
    served: RunningGateway, http: aiohttp.ClientSession
) -> None:
    for route in ("/control/", "/control/chat", "/control/settings/about"):
        async with http.get(served.http_url + route) as response:
            assert response.status == 200 and response.content_type == "text/html"
            page = await response.text()
        assert '<html data-openclaw-control-ui-base-path="/control"' in page
        assert 'src="/control/assets/app-1234.js"' in page
        assert 'href="/control/favicon.svg"' in page


async def test_the_index_carries_webchats_headers_and_allows_only_its_inline_scripts(
    served: RunningGateway, http: aiohttp.ClientSession
) -> None:
    async with http.get(served.http_url + "/control/chat") as response:
        headers = response.headers
    host = served.http_url.removeprefix("http://")
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self' 'sha256-" in policy and "unsafe-eval" not in policy
    assert f"connect-src 'self' ws://{host}" in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-cache"


async def test_assets_are_served_compressed_and_cached_for_good(
    served: RunningGateway, http: aiohttp.ClientSession
) -> None:
    url = served.http_url + "/control/assets/app-1234.js"
    async with http.get(url, headers={"Accept-Encoding": "gzip"}) as response:
        assert response.status == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert "immutable" in response.headers["Cache-Control"]
        assert gzip.decompress(await response.read()).decode() == APP


async def test_a_missing_asset_is_404_and_paths_never_leave_the_root(
    served: RunningGateway, http: aiohttp.ClientSession
) -> None:
    async with http.get(served.http_url + "/control/assets/gone-9.js") as response:
        assert response.status == 404
    async with http.get(served.http_url + "/control/%2e%2e/secret.txt") as response:
        assert response.status == 404
        assert "outside" not in await response.text()


async def test_the_config_names_the_agent_and_the_server_version(
    served: RunningGateway, http: aiohttp.ClientSession
) -> None:
    from clawgate import __version__

    for path in ("/control-ui-config.json", "/control/control-ui-config.json"):
        async with http.get(served.http_url + path) as response:
            assert response.status == 200
            body = await response.json()
        assert body["basePath"] == "/control"
        assert body["assistantName"] == "Claw"
        assert body["assistantAvatar"] == "https://example.invalid/a.png"
        assert body["serverVersion"] == __version__


async def test_the_websocket_upgrade_at_the_mount_reaches_the_gateway(
    served: RunningGateway, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(served.http_url.replace("http", "ws") + "/control") as ws:
        challenge = await ws.receive_json(timeout=5)
    assert challenge["event"] == "connect.challenge"


async def test_without_the_setting_nothing_is_served(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    async with http.get(gateway.http_url + "/control/chat") as response:
        assert response.status == 404
    async with http.get(gateway.http_url + "/control-ui-config.json") as response:
        assert response.status == 404
