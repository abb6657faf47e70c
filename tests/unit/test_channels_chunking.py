"""Splitting replies at the platform's limit (channels/chunking.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clawgate.channels.chunking import split_text


def test_short_text_is_one_chunk() -> None:
    assert split_text("hello", 100) == ["hello"]


def test_empty_text_gives_no_chunk() -> None:
    assert split_text("  \n ", 100) == []


def test_splits_at_a_paragraph_break_first() -> None:
    text = "a" * 40 + "\n\n" + "b" * 40 + "\n" + "c" * 10
    assert split_text(text, 70) == ["a" * 40, "b" * 40 + "\n" + "c" * 10]


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    chunks = split_text("x" * 250, 100)
    assert "".join(chunks) == "x" * 250 and all(len(c) <= 100 for c in chunks)


def test_a_code_fence_is_closed_and_reopened_across_chunks() -> None:
    code = "\n".join(f"line {n}" for n in range(40))
    chunks = split_text(f"intro\n```python\n{code}\n```\noutro", 120)
    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.count("```") % 2 == 0, chunk
    assert all(c.startswith("```python") for c in chunks[1:-1])


@given(st.text(alphabet=st.sampled_from("ab `\n"), max_size=2000), st.integers(32, 300))
def test_every_chunk_fits_the_limit(text: str, limit: int) -> None:
    assert all(len(chunk) <= limit for chunk in split_text(text, limit))


@given(st.text(alphabet=st.sampled_from("abc \n"), max_size=2000), st.integers(32, 300))
def test_no_text_is_lost_without_fences(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert "".join(chunks).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace(
        "\n", ""
    )
