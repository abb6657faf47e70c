"""The WebChat page over real HTTP: files, content types, security headers, caching."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.conftest import RunningGateway

SCRIPT_SRC = re.compile(r'<script[^>]*\bsrc="([^"]+)"')


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client session."""
    async with aiohttp.ClientSession() as session:
        yield session


async def test_root_serves_the_page_with_a_strict_policy(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    async with http.get(gateway.http_url + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        page = await response.text()
        headers = response.headers
    host = gateway.http_url.removeprefix("http://")
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert f"connect-src 'self' ws://{host}" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    # No inline script anywhere: every <script> loads a file the CSP allows.
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None
    assert SCRIPT_SRC.findall(page) == ["/webchat/app.js"]
    assert 'aria-live="polite"' in page and '<label for="composer-input">' in page


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "text/javascript"),
        ("gateway.js", "text/javascript"),
        ("webchat.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ],
)
async def test_assets_are_served_with_their_type_and_headers(
    gateway: RunningGateway, http: aiohttp.ClientSession, name: str, content_type: str
) -> None:
    async with http.get(f"{gateway.http_url}/webchat/{name}") as response:
        assert response.status == 200
        assert response.content_type == content_type
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert len(await response.read()) > 0


async def test_unknown_assets_and_traversal_are_not_found(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    for path in ("/webchat/nope.js", "/webchat/..%2F__init__.py", "/webchat/", "/other"):
        async with http.get(gateway.http_url + path) as response:
            assert response.status == 404, path


async def test_an_unchanged_file_is_revalidated_with_its_etag(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    async with http.get(gateway.http_url + "/webchat/app.js") as first:
        etag = first.headers["ETag"]
        assert first.headers["Cache-Control"] == "no-cache"
    async with http.get(
        gateway.http_url + "/webchat/app.js", headers={"If-None-Match": etag}
    ) as second:
        assert second.status == 304
        assert await second.read() == b""


async def test_a_hostile_host_header_cannot_add_policy_directives(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    headers = {"Host": "evil.example; script-src *"}
    async with http.get(gateway.http_url + "/", headers=headers) as response:
        policy = response.headers["Content-Security-Policy"]
    assert "script-src *" not in policy and "evil.example" not in policy
    assert "connect-src 'self';" in policy


async def test_the_page_never_puts_the_secret_in_a_url(
    gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    async with http.get(gateway.http_url + "/") as response:
        page = await response.text()
    async with http.get(gateway.http_url + "/webchat/app.js") as response:
        script = await response.text()
    # The secret field has no name, so no form submission can carry it.
    secret_input = re.search(r'<input id="auth-secret"[^>]*>', page)
    assert secret_input is not None and "name=" not in secret_input.group(0)
    assert "sessionStorage" in script and "localStorage" not in script
    assert "?token" not in script and "searchParams" not in script
