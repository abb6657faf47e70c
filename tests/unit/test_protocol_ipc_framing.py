"""Line framing for plugin IPC (spec §2.1)."""

from __future__ import annotations

from clawgate.protocol.ipc.framing import MAX_FRAME_BYTES, LineDecoder, encode_frame


def test_limit_is_one_mebibyte() -> None:
    assert MAX_FRAME_BYTES == 1_048_576


def test_complete_lines_are_returned_without_lf() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b'{"a":1}\n{"b":2}\n') == [b'{"a":1}', b'{"b":2}']


def test_one_trailing_cr_is_stripped() -> None:
    assert LineDecoder().feed(b"abc\r\n") == [b"abc"]
    assert LineDecoder().feed(b"abc\r\r\n") == [b"abc\r"]


def test_empty_lines_are_skipped() -> None:
    assert LineDecoder().feed(b"\n\r\n\nabc\n\n") == [b"abc"]


def test_line_split_across_reads_is_joined() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b'{"a"') == []
    assert decoder.feed(b":1") == []
    assert decoder.feed(b"}\r") == []
    assert decoder.feed(b"\nx") == [b'{"a":1}']
    assert decoder.buffered == 1


def test_partial_tail_is_held_until_its_lf() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert decoder.buffered == 4
    assert decoder.feed(b":2}\n") == [b'{"b":2}']
    assert decoder.buffered == 0


def test_exactly_one_mib_is_accepted() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b"x" * MAX_FRAME_BYTES) == []
    assert decoder.feed(b"\n") == [b"x" * MAX_FRAME_BYTES]
    assert not decoder.overflow


def test_one_byte_over_overflows_without_waiting_for_newline() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b"x" * MAX_FRAME_BYTES) == []
    assert decoder.feed(b"x") == []
    assert decoder.overflow
    assert decoder.buffered == 0


def test_complete_line_over_the_limit_overflows() -> None:
    decoder = LineDecoder(max_bytes=10)
    assert decoder.feed(b"x" * 11 + b"\n") == []
    assert decoder.overflow


def test_trailing_cr_counts_towards_the_limit() -> None:
    decoder = LineDecoder(max_bytes=3)
    assert decoder.feed(b"abc\r\n") == []
    assert decoder.overflow


def test_overflow_returns_lines_completed_before_it() -> None:
    decoder = LineDecoder(max_bytes=4)
    assert decoder.feed(b"ok\ntoolong") == [b"ok"]
    assert decoder.overflow


def test_decoder_refuses_input_after_overflow() -> None:
    decoder = LineDecoder(max_bytes=2)
    decoder.feed(b"xyz")
    assert decoder.feed(b"\nab\n") == []


def test_buffer_never_exceeds_limit() -> None:
    decoder = LineDecoder(max_bytes=10)
    for _ in range(10):
        decoder.feed(b"x")
        assert decoder.buffered <= 10
    decoder.feed(b"x" * 1000)
    assert decoder.overflow and decoder.buffered == 0


def test_encode_frame_is_compact_json_and_lf() -> None:
    assert encode_frame({"a": [1, "b"]}) == b'{"a":[1,"b"]}\n'


def test_encode_frame_escapes_line_breaks_inside_strings() -> None:
    data = encode_frame({"a": "line\nbreak"})
    assert data.endswith(b"\n") and data.count(b"\n") == 1
