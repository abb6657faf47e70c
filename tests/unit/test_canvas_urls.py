"""The canvas URLs nodes are given, and `canvasHostUrl` in hello-ok (canvas/urls.py, hello)."""

from __future__ import annotations

import pytest

from clawgate.canvas.urls import canvas_host_url, canvas_page_url
from clawgate.protocol.hello import HelloAuth, hello_ok

BASE = "http://127.0.0.1:18793"


def test_a_loopback_canvas_is_reached_on_loopback() -> None:
    assert canvas_host_url("127.0.0.1", 18793, reached_host="box.lan:18789") == BASE


def test_a_canvas_bound_to_one_address_is_reached_there() -> None:
    assert canvas_host_url("192.0.2.4", 18793) == "http://192.0.2.4:18793"
    assert canvas_host_url("::1", 18793) == "http://[::1]:18793"


def test_a_wildcard_canvas_is_reached_where_the_client_reached_the_gateway() -> None:
    assert canvas_host_url("0.0.0.0", 18793, reached_host="box.lan:18789") == (
        "http://box.lan:18793"
    )
    assert canvas_host_url("::", 18793, reached_host="[fd00::5]:18789") == "http://[fd00::5]:18793"
    assert canvas_host_url("0.0.0.0", 18793, reached_host="192.0.2.9") == "http://192.0.2.9:18793"


def test_a_wildcard_canvas_falls_back_to_loopback_for_an_odd_host_header() -> None:
    for odd in (None, "", "evil.example/path", "a b", "[not-v6]:1", "x@y:1"):
        assert canvas_host_url("0.0.0.0", 18793, reached_host=odd) == BASE


def test_tls_makes_the_url_https() -> None:
    assert canvas_host_url("127.0.0.1", 18793, tls=True) == "https://127.0.0.1:18793"


def test_a_page_url_puts_the_agents_folder_first() -> None:
    assert canvas_page_url(BASE, "main") == f"{BASE}/main/"
    assert canvas_page_url(BASE, "main", "index.html") == f"{BASE}/main/index.html"
    assert canvas_page_url(BASE + "/", "main", "charts/") == f"{BASE}/main/charts/"


def test_a_page_url_encodes_each_segment() -> None:
    assert canvas_page_url(BASE, "main", "my page#1.html") == f"{BASE}/main/my%20page%231.html"


@pytest.mark.parametrize(
    ("agent", "path"),
    [
        ("main", "../other/index.html"),
        ("main", "a/../../x"),
        ("..", "x"),
        ("main/../other", ""),
        ("main", "/etc/passwd"),
        ("main", ".env"),
        ("__clawgate__", "ws"),
        ("", "x"),
    ],
)
def test_a_page_url_that_would_leave_the_agents_folder_is_refused(agent: str, path: str) -> None:
    with pytest.raises(ValueError, match="not a canvas page path"):
        canvas_page_url(BASE, agent, path)


def hello(protocol: int, canvas: str | None) -> dict[str, object]:
    return hello_ok(
        protocol=protocol,
        version="1",
        conn_id="c",
        boot_id="b",
        methods=[],
        events=[],
        snapshot={},
        policy={},
        auth=HelloAuth(role="node", scopes=()),
        canvas_host_url=canvas,
    )


def test_protocol_3_hello_carries_the_canvas_url() -> None:
    assert hello(3, BASE)["canvasHostUrl"] == BASE
    assert "canvasHostUrl" not in hello(3, None)


def test_protocol_4_hello_never_carries_the_canvas_url() -> None:
    assert "canvasHostUrl" not in hello(4, BASE)
