"""The SSE decoder and the echo backend's word splitting."""

from __future__ import annotations

from clawgate.agents.echo import split_words
from clawgate.agents.sse import SseDecoder


def test_events_split_across_chunks_and_comments_skipped() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b': keep-alive\n\ndata: {"a"') == []
    assert decoder.feed(b":1}\r\n\r\ndata: [DONE]\n") == ['{"a":1}']
    assert decoder.feed(b"\n") == ["[DONE]"]


def test_multi_line_data_and_unterminated_last_event() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"event: x\ndata: one\ndata:two\n\ndata: tail") == ["one\ntwo"]
    assert decoder.close() == ["tail"]


def test_split_words_round_trips() -> None:
    text = "  hello  big\nworld "
    pieces = split_words(text)
    assert "".join(pieces) == text
    assert [p.strip() for p in pieces if p.strip()] == ["hello", "big", "world"]
