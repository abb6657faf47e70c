"""Depth checks without recursion (protocol/nesting.py)."""

from __future__ import annotations

from typing import Any

import pytest

from clawgate.protocol.nesting import nesting_exceeds, text_nesting_exceeds


@pytest.mark.parametrize(("levels", "exceeds"), [(1, False), (64, False), (65, True)])
def test_parsed_depth_is_counted_from_the_top_container(levels: int, exceeds: bool) -> None:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    assert nesting_exceeds(value) is exceeds


def test_a_hundred_thousand_levels_do_not_touch_the_stack() -> None:
    value: Any = []
    for _ in range(100_000):  # far past any recursion limit
        value = [value]
    assert nesting_exceeds(value)


def test_scalars_never_exceed() -> None:
    assert not nesting_exceeds("[[[[")


@pytest.mark.parametrize(
    ("text", "exceeds"),
    [
        ("[" * 64 + "]" * 64, False),
        ("[" * 65 + "]" * 65, True),
        ('x = "' + "[" * 100 + '"', False),
        ("x = '" + "{" * 100 + "'", False),
        ("# " + "[" * 100 + "\nx = 1", False),
        ('x = """\n' + "[" * 100 + '\n"""', False),
        ("[a]\n" * 100, False),
        ("x = " + "{y = " * 65 + "1" + "}" * 65, True),
    ],
)
def test_text_depth_skips_strings_comments_and_table_headers(text: str, exceeds: bool) -> None:
    assert text_nesting_exceeds(text) is exceeds
