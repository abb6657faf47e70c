"""Content types, caching headers and the injected client script (canvas/content.py)."""

from __future__ import annotations

import email.utils

import pytest

from clawgate.canvas.content import (
    CLIENT_SCRIPT_PATH,
    cache_headers,
    content_type,
    entity_tag,
    inject_client,
    is_html,
    missing_page,
    not_modified,
)

TAG = f'<script src="{CLIENT_SCRIPT_PATH}"></script>'.encode()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("APP.JS", "text/javascript; charset=utf-8"),
        ("mod.mjs", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("data.json", "application/json"),
        ("logo.svg", "image/svg+xml"),
        ("photo.jpeg", "image/jpeg"),
        ("module.wasm", "application/wasm"),
        ("font.woff2", "font/woff2"),
        ("clip.webm", "video/webm"),
    ],
)
def test_known_kinds_get_their_content_type(name: str, expected: str) -> None:
    assert content_type(name) == expected


@pytest.mark.parametrize("name", ["blob.bin", "Makefile", "archive.tar.zst"])
def test_unknown_kinds_are_octet_streams(name: str) -> None:
    assert content_type(name) == "application/octet-stream"


def test_only_html_pages_get_the_client_script() -> None:
    assert is_html("index.html") and is_html("old.HTM")
    assert not is_html("app.js")


def test_every_file_is_revalidated_before_reuse() -> None:
    headers = cache_headers('W/"1-2"', 1_700_000_000.7)
    assert headers["Cache-Control"] == "no-cache"
    assert headers["ETag"] == 'W/"1-2"'
    assert headers["Last-Modified"] == "Tue, 14 Nov 2023 22:13:20 GMT"
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_the_tag_changes_with_size_mtime_and_injection() -> None:
    tags = {
        entity_tag(10, 1, injected=False),
        entity_tag(11, 1, injected=False),
        entity_tag(10, 2, injected=False),
        entity_tag(10, 1, injected=True),
    }
    assert len(tags) == 4


def test_a_matching_if_none_match_is_not_modified() -> None:
    etag = entity_tag(10, 1, injected=False)
    assert not_modified(etag, None, etag, 0)
    assert not_modified(f'"other", {etag.removeprefix("W/")}', None, etag, 0)
    assert not_modified("*", None, etag, 0)
    assert not not_modified('"other"', None, etag, 0)


def test_if_none_match_wins_over_if_modified_since() -> None:
    late = email.utils.formatdate(2_000_000_000, usegmt=True)
    assert not not_modified('"other"', late, 'W/"x"', 1_000_000_000)


def test_if_modified_since_compares_whole_seconds() -> None:
    since = email.utils.formatdate(1_700_000_000, usegmt=True)
    assert not_modified(None, since, 'W/"x"', 1_700_000_000.9)
    assert not not_modified(None, since, 'W/"x"', 1_700_000_001.0)
    assert not not_modified(None, "not a date", 'W/"x"', 0)
    assert not not_modified(None, None, 'W/"x"', 0)


def test_the_script_goes_before_the_last_closing_body_tag() -> None:
    html = b"<html><body><script>'</body>'</script><p>x</p></BODY></html>"
    assert inject_client(html) == (
        b"<html><body><script>'</body>'</script><p>x</p>" + TAG + b"</BODY></html>"
    )


def test_without_a_body_tag_the_script_goes_before_closing_html_or_at_the_end() -> None:
    assert inject_client(b"<html><p>x</p></html>") == b"<html><p>x</p>" + TAG + b"</html>"
    assert inject_client(b"<p>fragment</p>") == b"<p>fragment</p>" + TAG


def test_a_versioned_tag_names_the_version_the_page_shows() -> None:
    tagged = inject_client(b"<body></body>", "0a1b")
    assert tagged == (
        f'<body><script src="{CLIENT_SCRIPT_PATH}" data-version="0a1b"></script></body>'.encode()
    )


def test_the_missing_page_escapes_the_path() -> None:
    page = missing_page("/main/<script>alert(1)</script>")
    assert b"<script>alert" not in page
    assert b"&lt;script&gt;" in page
