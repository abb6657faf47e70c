"""The canvas host inside a real gateway: files, headers, traversal, auth and live reload."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from clawgate.canvas.settings import CanvasSettings
from clawgate.client import DeviceIdentity
from clawgate.protocol.limits import Limits
from tests.conftest import TEST_TICK_MS, GatewayFactory, RunningGateway
from tests.wire import open_peer, request, signed_connect_params

SECRET = "top secret outside the canvas root"
PAGE = "<!doctype html><html><head><title>t</title></head><body><h1>hello</h1></body></html>"
NODE_CLIENT = {"id": "node-host", "version": "1", "platform": "linux", "mode": "node"}


@dataclass
class Canvas:
    """A running gateway with its canvas host, the root, and a file outside the root."""

    gateway: RunningGateway
    root: Path
    outside: Path

    @property
    def url(self) -> str:
        canvas = self.gateway.server.canvas
        assert canvas is not None
        return canvas.host_url()

    @property
    def port(self) -> int:
        canvas = self.gateway.server.canvas
        assert canvas is not None
        return canvas.port

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/__clawgate__/ws"

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path


async def start_canvas(
    gateway_factory: GatewayFactory, tmp_path: Path, limits: Limits | None = None
) -> Canvas:
    root = tmp_path / "canvas-root"
    outside = tmp_path / "secret.txt"
    outside.write_text(SECRET, encoding="utf-8")
    gateway = await gateway_factory(
        canvas=CanvasSettings(root=root, port=0),
        limits=limits or Limits(tick_interval_ms=TEST_TICK_MS),
    )
    return Canvas(gateway, root, outside)


@pytest.fixture
async def canvas(gateway_factory: GatewayFactory, tmp_path: Path) -> Canvas:
    """A gateway with token auth and its canvas host on an ephemeral port."""
    return await start_canvas(gateway_factory, tmp_path)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def raw_get(port: int, target: bytes) -> tuple[int, bytes]:
    """Send one request with exactly `target` as its request target; return status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def live_socket(
    http: aiohttp.ClientSession, canvas: Canvas, **frame: object
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(canvas.ws_url, autoclose=False)
    await ws.send_json({"type": "auth", **frame})
    return ws


async def notices_until(ws: aiohttp.ClientWebSocketResponse, path: str) -> list[list[str]]:
    """Return the paths of every reload notice received up to the first that names `path`.

    Earlier notices may name files a test wrote before the socket opened: the watcher
    reports in batches, a moment after the writes.
    """
    seen: list[list[str]] = []
    async with asyncio.timeout(10):
        while not seen or path not in seen[-1]:
            notice = await ws.receive_json()
            assert notice["type"] == "reload", notice
            seen.append(notice["paths"])
    return seen


# -- serving files ---------------------------------------------------------------------


async def test_an_agents_page_is_served_at_the_same_relative_url(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    canvas.write("main/index.html", PAGE)
    async with http.get(canvas.url + "/main/index.html") as response:
        body = await response.text()
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<h1>hello</h1>" in body
    assert re.search(
        r'<script src="/__clawgate__/live-reload.js" data-version="[0-9a-f]{16}"></script>'
        r"</body></html>$",
        body,
    )


async def test_a_folder_url_serves_its_index(canvas: Canvas, http: aiohttp.ClientSession) -> None:
    canvas.write("main/index.html", PAGE)
    async with http.get(canvas.url + "/main/") as response:
        assert response.status == 200
        assert "<h1>hello</h1>" in await response.text()


async def test_the_root_url_serves_the_root_index_when_present(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    canvas.write("index.html", "<html><body>top</body></html>")
    async with http.get(canvas.url + "/") as response:
        assert response.status == 200
        assert "top" in await response.text()


async def test_a_missing_page_is_a_404_that_reloads_when_the_file_appears(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    async with http.get(canvas.url + "/") as response:
        assert response.status == 404
        assert response.headers["Cache-Control"] == "no-cache"
        assert "/__clawgate__/live-reload.js" in await response.text()


async def test_a_folder_without_its_slash_redirects_to_it(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    canvas.write("main/index.html", PAGE)
    async with http.get(canvas.url + "/main?x=1", allow_redirects=False) as response:
        assert response.status == 308
        assert response.headers["Location"] == "/main/?x=1"


async def test_files_get_their_content_type_and_validators(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    canvas.write("main/app.js", "console.log(1)")
    canvas.write("main/data.json", "{}")
    (canvas.root / "main" / "blob.bin").write_bytes(bytes(range(256)) * 1000)
    expected = {
        "app.js": "text/javascript; charset=utf-8",
        "data.json": "application/json",
        "blob.bin": "application/octet-stream",
    }
    for name, kind in expected.items():
        async with http.get(f"{canvas.url}/main/{name}") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == kind
            assert response.headers["Cache-Control"] == "no-cache"
            assert response.headers["ETag"].startswith('W/"')
            assert "Last-Modified" in response.headers
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            body = await response.read()
        assert body == (canvas.root / "main" / name).read_bytes()


async def test_an_unchanged_file_is_answered_304(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    canvas.write("main/app.css", "body{}")
    url = canvas.url + "/main/app.css"
    async with http.get(url) as first:
        etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    async with http.get(url, headers={"If-None-Match": etag}) as response:
        assert response.status == 304
        assert await response.read() == b""
    async with http.get(url, headers={"If-Modified-Since": modified}) as response:
        assert response.status == 304


async def test_a_changed_file_gets_a_new_validator(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    path = canvas.write("main/app.css", "body{}")
    url = canvas.url + "/main/app.css"
    async with http.get(url) as first:
        etag = first.headers["ETag"]
    path.write_text("body{color:red}", encoding="utf-8")
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000_000))
    async with http.get(url, headers={"If-None-Match": etag}) as response:
        assert response.status == 200
        assert await response.text() == "body{color:red}"


async def test_head_answers_the_headers_without_a_body(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    canvas.write("main/app.css", "body{}")
    async with http.head(canvas.url + "/main/app.css") as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == "6"
        assert await response.read() == b""


# -- traversal ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        b"/../secret.txt",
        b"/main/../../secret.txt",
        b"/%2e%2e/secret.txt",
        b"/%2E%2E/secret.txt",
        b"/main/%2e%2e/%2e%2e/secret.txt",
        b"/.%2e/secret.txt",
        b"/..%2fsecret.txt",
        b"/main/..%2f..%2fsecret.txt",
        b"/..%5csecret.txt",
        b"/main\\..\\..\\secret.txt",
        b"/%252e%252e/secret.txt",
        b"/main/index.html%00/../../secret.txt",
        b"/%c0%ae%c0%ae/secret.txt",
        b"//..//secret.txt",
        b"http://x/../secret.txt",
    ],
)
async def test_traversal_attempts_never_reach_a_file_outside_the_root(
    canvas: Canvas, target: bytes
) -> None:
    canvas.write("main/index.html", PAGE)
    status, body = await raw_get(canvas.port, target)
    assert status in (400, 404)
    assert SECRET.encode() not in body


async def test_a_symlink_to_a_file_outside_the_root_is_not_followed(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    (canvas.root / "main").mkdir(parents=True)
    (canvas.root / "main" / "leak.txt").symlink_to(canvas.outside)
    async with http.get(canvas.url + "/main/leak.txt") as response:
        assert response.status == 404
        assert SECRET not in await response.text()


async def test_a_symlinked_folder_outside_the_root_is_not_followed(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    canvas.root.mkdir(exist_ok=True)
    (canvas.root / "elsewhere").symlink_to(canvas.outside.parent, target_is_directory=True)
    async with http.get(canvas.url + "/elsewhere/secret.txt") as response:
        assert response.status == 404
        assert SECRET not in await response.text()


async def test_a_symlink_that_stays_inside_the_root_is_followed(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    canvas.write("shared/style.css", "body{}")
    (canvas.root / "main").mkdir()
    (canvas.root / "main" / "style.css").symlink_to(canvas.root / "shared" / "style.css")
    async with http.get(canvas.url + "/main/style.css") as response:
        assert response.status == 200
        assert await response.text() == "body{}"


async def test_hidden_files_are_not_served(canvas: Canvas, http: aiohttp.ClientSession) -> None:
    canvas.write("main/.env", "KEY=1")
    async with http.get(canvas.url + "/main/.env") as response:
        assert response.status == 404


async def test_a_fifo_under_the_root_is_refused_without_hanging(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    (canvas.root / "main").mkdir(parents=True)
    os.mkfifo(canvas.root / "main" / "pipe.html")
    async with http.get(canvas.url + "/main/pipe.html") as response:
        assert response.status == 404


# -- auth for what is not a plain read ----------------------------------------------------


async def test_a_write_method_without_the_gateways_auth_is_401(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        async with http.request(method, canvas.url + "/main/index.html") as response:
            assert response.status == 401, method
            assert "token missing" in await response.text()
    async with http.put(
        canvas.url + "/main/index.html", headers={"Authorization": "Bearer wrong"}
    ) as response:
        assert response.status == 401
        assert "token mismatch" in await response.text()
    assert not (canvas.root / "main" / "index.html").exists()


async def test_a_write_method_with_the_gateways_token_is_405_read_only(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": f"Bearer {canvas.gateway.token}"}
    async with http.put(canvas.url + "/main/x.html", data=b"x", headers=headers) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD"
    assert not (canvas.root / "main" / "x.html").exists()


# -- live reload ------------------------------------------------------------------------


async def test_the_live_reload_socket_tells_a_page_which_file_changed(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    canvas.write("main/index.html", PAGE)
    ws = await live_socket(http, canvas, token=canvas.gateway.token, page="/main/index.html")
    assert await ws.receive_json(timeout=5) == {"type": "ready"}
    canvas.write("main/app.css", "body{color:red}")
    await notices_until(ws, "main/app.css")
    await ws.close()


async def test_a_change_in_another_agents_folder_does_not_reload_the_page(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    canvas.write("main/index.html", PAGE)
    canvas.write("other/index.html", PAGE)
    main = await live_socket(http, canvas, token=canvas.gateway.token, page="/main/")
    top = await live_socket(http, canvas, token=canvas.gateway.token, page="/")
    assert await main.receive_json(timeout=5) == {"type": "ready"}
    assert await top.receive_json(timeout=5) == {"type": "ready"}
    canvas.write("other/app.js", "1")
    await notices_until(top, "other/app.js")  # the top-level page hears every change
    canvas.write("main/app.js", "2")
    heard = await notices_until(main, "main/app.js")
    assert not [paths for paths in heard if any(p.startswith("other/") for p in paths)]
    await main.close()
    await top.close()


async def test_a_page_opened_after_a_write_is_not_reloaded_for_it(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    top = await live_socket(http, canvas, token=canvas.gateway.token, page="/")
    assert await top.receive_json(timeout=5) == {"type": "ready"}
    canvas.write("main/shown.html", PAGE)
    async with http.get(canvas.url + "/main/shown.html") as response:
        found = re.search(r'data-version="([0-9a-f]+)"', await response.text())
    assert found is not None
    page = await live_socket(
        http, canvas, token=canvas.gateway.token, page="/main/shown.html", version=found[1]
    )
    assert await page.receive_json(timeout=5) == {"type": "ready"}
    # The write's batch has gone out once the page open before it heard of it.
    await notices_until(top, "main/shown.html")
    canvas.write("main/next.css", "p{}")
    heard = await notices_until(page, "main/next.css")
    assert not [paths for paths in heard if "main/shown.html" in paths]
    # Written again: now the page shows an old version and reloads.
    canvas.write("main/shown.html", PAGE + "<p>again</p>")
    assert (await notices_until(page, "main/shown.html"))[-1] == ["main/shown.html"]
    await page.close()
    await top.close()


async def test_the_live_reload_socket_refuses_a_wrong_token(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    ws = await live_socket(http, canvas, token="wrong", page="/")
    message = await ws.receive(timeout=5)
    assert message.type is aiohttp.WSMsgType.CLOSE
    assert message.data == 1008
    assert message.extra == "unauthorized: gateway token mismatch (provide gateway auth token)"


async def test_the_live_reload_socket_refuses_no_credentials(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    ws = await live_socket(http, canvas, page="/")
    message = await ws.receive(timeout=5)
    assert (message.data, message.extra) == (
        1008,
        "unauthorized: gateway token missing (provide gateway auth token)",
    )


async def test_the_live_reload_socket_closes_a_page_that_says_nothing(
    gateway_factory: GatewayFactory, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    canvas = await start_canvas(
        gateway_factory, tmp_path, Limits(tick_interval_ms=TEST_TICK_MS, handshake_timeout_ms=1000)
    )
    ws = await http.ws_connect(canvas.ws_url, autoclose=False)
    message = await ws.receive(timeout=5)
    assert (message.data, message.extra) == (1000, "handshake timeout")


async def test_the_live_reload_socket_refuses_a_foreign_origin(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(canvas.ws_url, headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403


async def connect_node(
    canvas: Canvas, http: aiohttp.ClientSession, protocol: int = 4
) -> tuple[DeviceIdentity, dict[str, Any]]:
    """Connect a new node device (paired on loopback) and return it with its hello-ok."""
    identity = DeviceIdentity.generate()
    peer = await open_peer(http, canvas.gateway.url)
    params = signed_connect_params(
        identity,
        peer.challenge,
        token=canvas.gateway.token,
        role="node",
        scopes=(),
        client=NODE_CLIENT,
    )
    params["minProtocol"] = params["maxProtocol"] = protocol
    await peer.send(request("connect", params, "c"))
    answer = await peer.response("c")
    await peer.ws.close()
    hello: dict[str, Any] = answer["payload"]
    return identity, hello


async def test_the_live_reload_socket_admits_a_paired_nodes_device_token(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    identity, hello = await connect_node(canvas, http)
    device_token = hello["auth"]["deviceToken"]
    ws = await live_socket(
        http, canvas, deviceId=identity.device_id, deviceToken=device_token, page="/"
    )
    assert await ws.receive_json(timeout=5) == {"type": "ready"}
    await ws.close()


async def test_a_page_admitted_with_an_old_secret_is_closed_at_the_next_change(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    ws = await live_socket(http, canvas, token=canvas.gateway.token, page="/")
    assert await ws.receive_json(timeout=5) == {"type": "ready"}
    assert canvas.gateway.server.access.replace_secret(
        canvas.gateway.server.access.auth.mode, "rotated-secret"
    )
    canvas.write("main/app.js", "1")
    message = await ws.receive(timeout=10)
    assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 4001)


# -- hello-ok and the gateway's life --------------------------------------------------------


async def test_a_protocol_3_node_is_told_the_canvas_url_in_hello(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    _, hello = await connect_node(canvas, http, 3)
    assert hello["canvasHostUrl"] == canvas.url


async def test_a_protocol_4_node_gets_no_canvas_url_the_field_is_not_allowed(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    _, hello = await connect_node(canvas, http, 4)
    assert "canvasHostUrl" not in hello


async def test_an_operator_is_not_told_the_canvas_url(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    peer = await open_peer(http, canvas.gateway.url)
    hello = await peer.authenticate(canvas.gateway.token, minProtocol=3, maxProtocol=3)
    assert "canvasHostUrl" not in hello


async def test_page_urls_for_nodes_open_the_agents_file(
    canvas: Canvas, http: aiohttp.ClientSession
) -> None:
    canvas.write("main/charts/index.html", PAGE)
    host = canvas.gateway.server.canvas
    assert host is not None
    async with http.get(host.page_url("main", "charts/")) as response:
        assert response.status == 200


async def test_stopping_the_gateway_stops_the_canvas_host(canvas: Canvas) -> None:
    port = canvas.port
    await canvas.gateway.server.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    assert [t for t in asyncio.all_tasks() if t.get_name() == "canvas-watch"] == []


def test_a_gateway_with_the_canvas_off_loads_neither_the_host_nor_watchfiles(
    tmp_path: Path,
) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from clawgate.gateway.server import GatewayServer\n"
        "from clawgate.gateway.settings import GatewaySettings\n"
        "from clawgate.protocol.auth import AuthMode, SharedSecretAuth\n"
        f"server = GatewayServer(GatewaySettings(home=Path({str(tmp_path)!r}),"
        " auth=SharedSecretAuth(AuthMode.TOKEN, 't')))\n"
        "assert server.canvas is None\n"
        "loaded = [m for m in sys.modules if m.startswith(('watchfiles', 'clawgate.canvas.'))]\n"
        "print(loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "['clawgate.canvas.settings']"
