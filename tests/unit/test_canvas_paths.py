"""URL path -> file below the canvas root, decided without a disk (canvas/paths.py)."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clawgate.canvas.paths import (
    CanvasPath,
    Refusal,
    RefusalKind,
    change_reaches,
    is_inside,
    page_scope,
    relative_change,
    resolve_url_path,
)

ROOT = PurePosixPath("/srv/canvas")


def resolved(raw: str) -> CanvasPath:
    result = resolve_url_path(raw)
    assert isinstance(result, CanvasPath), result
    return result


def refused(raw: str) -> RefusalKind:
    result = resolve_url_path(raw)
    assert isinstance(result, Refusal), result
    return result.kind


def test_an_agent_page_resolves_to_its_folder() -> None:
    assert resolved("/main/index.html") == CanvasPath(("main", "index.html"), directory=False)


def test_the_root_url_names_the_root_index() -> None:
    assert resolved("/").file_segments() == ("index.html",)


def test_a_folder_url_names_its_index() -> None:
    assert resolved("/main/charts/").file_segments() == ("main", "charts", "index.html")


def test_percent_encoded_names_are_decoded_once() -> None:
    assert resolved("/main/my%20page.html").segments == ("main", "my page.html")
    assert resolved("/main/%C3%A9t%C3%A9.html").segments == ("main", "été.html")


def test_double_encoding_stays_a_literal_name() -> None:
    assert resolved("/main/%252e%252e/x").segments == ("main", "%2e%2e", "x")


def test_empty_segments_add_nothing() -> None:
    assert resolved("//main//x.css").segments == ("main", "x.css")


@pytest.mark.parametrize(
    "raw",
    [
        "/..",
        "/../etc/passwd",
        "/main/../../etc/passwd",
        "/main/./index.html",
        "/%2e%2e/etc/passwd",
        "/%2E%2E/etc/passwd",
        "/main/%2e%2e/%2e%2e/secret",
        "/.%2e/secret",
        "/%2e/secret",
    ],
)
def test_dot_segments_in_any_spelling_are_refused(raw: str) -> None:
    assert refused(raw) is RefusalKind.NOT_FOUND


@pytest.mark.parametrize(
    "raw",
    [
        "/main/..%2f..%2fsecret",
        "/main/%2f..%2fsecret",
        "/main/..%5c..%5csecret",
        "/main\\..\\secret",
        "/main/%5c",
    ],
)
def test_encoded_separators_and_backslashes_are_refused(raw: str) -> None:
    assert refused(raw) is RefusalKind.BAD_REQUEST


@pytest.mark.parametrize("raw", ["/main/index.html%00.png", "/%00", "/main/a%0ab", "/a%7f"])
def test_nul_and_control_characters_are_refused(raw: str) -> None:
    assert refused(raw) is RefusalKind.BAD_REQUEST


@pytest.mark.parametrize("raw", ["/a%zz", "/a%2", "/a%", "/%C0%AE%C0%AE/", "/caf\u00e9", "/a b"])
def test_malformed_encodings_are_refused(raw: str) -> None:
    assert refused(raw) is RefusalKind.BAD_REQUEST


@pytest.mark.parametrize("raw", ["/.git/config", "/main/.env", "/main/%2eenv", "/.index.html.swp"])
def test_hidden_names_are_not_served(raw: str) -> None:
    assert refused(raw) is RefusalKind.NOT_FOUND


def test_a_path_not_starting_with_a_slash_is_refused() -> None:
    assert refused("main/index.html") is RefusalKind.BAD_REQUEST


def test_an_overlong_path_is_refused() -> None:
    assert refused("/" + "a/" * 3000) is RefusalKind.BAD_REQUEST


def test_an_overlong_name_is_not_found() -> None:
    assert refused("/" + "a" * 256) is RefusalKind.NOT_FOUND


def test_the_reserved_prefix_is_recognised_decoded() -> None:
    assert resolved("/__clawgate__/ws").reserved
    assert resolved("/%5F_clawgate__/ws").reserved
    assert not resolved("/main/__clawgate__/ws").reserved


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_no_resolved_path_leaves_the_root(raw: str) -> None:
    result = resolve_url_path("/" + raw)
    if isinstance(result, CanvasPath):
        joined = PurePosixPath(ROOT, *result.file_segments())
        assert all(part not in ("..", ".") for part in joined.parts)
        assert is_inside(ROOT, joined)


def test_containment_is_by_path_component_not_by_prefix() -> None:
    assert is_inside(ROOT, ROOT / "main" / "index.html")
    assert not is_inside(ROOT, PurePosixPath("/srv/canvas-other/index.html"))
    assert not is_inside(ROOT, PurePosixPath("/etc/passwd"))


def test_a_change_is_named_relative_to_the_root() -> None:
    assert relative_change(ROOT, ROOT / "main" / "app.css") == "main/app.css"


def test_changes_to_hidden_files_and_outside_the_root_are_ignored() -> None:
    assert relative_change(ROOT, ROOT / "main" / ".app.css.swp") is None
    assert relative_change(ROOT, ROOT / ".git" / "index") is None
    assert relative_change(ROOT, PurePosixPath("/tmp/x")) is None


def test_a_page_belongs_to_its_agent_folder() -> None:
    assert page_scope(resolved("/main/index.html")) == "main"
    assert page_scope(resolved("/main/")) == "main"
    assert page_scope(resolved("/index.html")) == ""
    assert page_scope(resolved("/")) == ""


def test_a_change_reloads_pages_of_its_folder_and_top_level_pages_only() -> None:
    assert change_reaches("main", "main/app.css")
    assert change_reaches("", "other/app.css")
    assert change_reaches("main", "shared.css")
    assert not change_reaches("main", "other/app.css")
