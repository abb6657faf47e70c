"""The event-stream decoder: bytes in, events out, no sockets."""

from __future__ import annotations

from clawgate.channels.sse import SseDecoder, SseEvent


def test_a_named_event_with_an_id_is_dispatched_at_the_blank_line() -> None:
    decoder = SseDecoder(1024)
    assert decoder.feed(b"id:7\nevent:receive\ndata:{}\n") == []
    assert decoder.feed(b"\n") == [SseEvent("receive", "{}", "7")]
    assert decoder.last_event_id == "7"


def test_an_event_split_anywhere_across_chunks_is_read_whole() -> None:
    decoder = SseDecoder(1024)
    stream = b"event: receive\r\ndata: one\r\ndata: two\r\n\r\n"
    events = [e for n in range(len(stream)) for e in decoder.feed(stream[n : n + 1])]
    assert events == [SseEvent("receive", "one\ntwo", None)]


def test_keep_alive_comments_are_counted_and_dispatch_nothing() -> None:
    decoder = SseDecoder(1024)
    assert decoder.feed(b":\n:\n\n") == []
    assert decoder.comments == 2


def test_an_unnamed_event_is_a_message_event() -> None:
    assert SseDecoder(1024).feed(b"data:x\n\n") == [SseEvent("message", "x", None)]


def test_an_oversized_event_is_dropped_and_the_next_one_read() -> None:
    decoder = SseDecoder(100)
    events = decoder.feed(b"event:receive\ndata:" + b"y" * 500)
    events += decoder.feed(b"y" * 500 + b"\n\nevent:receive\ndata:small\n\n")
    assert events == [SseEvent("receive", "small", None)] and decoder.dropped == 1


def test_an_oversized_event_of_many_lines_is_dropped_whole() -> None:
    decoder = SseDecoder(100)
    events = decoder.feed(b"data:" + b"z" * 60 + b"\ndata:" + b"z" * 60 + b"\n\ndata:ok\n\n")
    assert events == [SseEvent("message", "ok", None)] and decoder.dropped == 1
