"""Typing ids back: a full id or a unique prefix, and the short forms tables show."""

from __future__ import annotations

import pytest

from clawgate.cli.ids import AmbiguousId, UnknownId, resolve_id, short_ids

IDS = ["abc123def456aa", "abc123def456bb", "ffee00"]


def test_a_unique_prefix_resolves_to_its_id() -> None:
    assert resolve_id("ff", IDS) == "ffee00"
    assert resolve_id("ABC123DEF456A", IDS) == "abc123def456aa"


def test_a_full_id_resolves_even_when_it_prefixes_another() -> None:
    assert resolve_id("ab", ["ab", "abc"]) == "ab"


def test_a_shared_prefix_says_ambiguous_with_the_count() -> None:
    with pytest.raises(AmbiguousId, match="ambiguous: 2 matches"):
        resolve_id("abc", IDS)


def test_an_unknown_prefix_is_refused() -> None:
    with pytest.raises(UnknownId):
        resolve_id("zz", IDS)


def test_short_ids_are_unique_prefixes_that_resolve_back() -> None:
    short = short_ids(IDS)
    assert short["ffee00"] == "ffee00"
    assert short["abc123def456aa"] == "abc123def456a"
    for full, prefix in short.items():
        assert resolve_id(prefix, IDS) == full
