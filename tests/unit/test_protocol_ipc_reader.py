"""Inbound bytes to frames, stopping at the first unusable one (spec §2.1)."""

from __future__ import annotations

from clawgate.protocol.ipc.frames import Event, Request, Response, UnknownFrame
from clawgate.protocol.ipc.framing import MAX_FRAME_BYTES
from clawgate.protocol.ipc.reader import FrameReader

PING = b'{"type":"req","id":"1","method":"ping"}\n'


def test_frames_of_every_kind_come_out_in_order() -> None:
    reader = FrameReader()
    data = PING + b'{"id":"2","ok":true}\r\n\n{"type":"event","event":"e"}\n{"type":"x"}\n'
    assert reader.receive_data(data) == [
        Request("1", "ping", {}),
        Response("2", True, {}),
        Event("e", {}),
        UnknownFrame("x"),
    ]
    assert reader.error is None


def test_frame_split_across_reads_is_joined() -> None:
    reader = FrameReader()
    assert reader.receive_data(PING[:10]) == []
    assert reader.receive_data(PING[10:]) == [Request("1", "ping", {})]


def test_frames_before_an_invalid_one_are_returned_and_the_rest_dropped() -> None:
    reader = FrameReader()
    frames = reader.receive_data(PING + b'{"type":"req","id":"q","method":""}\n' + PING)
    assert frames == [Request("1", "ping", {})]
    assert reader.error is not None
    assert (reader.error.code, reader.error.reply_id) == ("INVALID_FRAME", "q")


def test_frames_before_an_oversized_line_are_returned() -> None:
    reader = FrameReader(max_bytes=64)
    assert reader.receive_data(PING + b"x" * 65) == [Request("1", "ping", {})]
    assert reader.error is not None
    assert (reader.error.code, reader.error.reply_id) == ("FRAME_TOO_LARGE", None)
    assert reader.error.message == "frame exceeds 1 MiB"


def test_oversized_line_is_refused_before_its_lf_arrives() -> None:
    reader = FrameReader()
    assert reader.receive_data(b"x" * MAX_FRAME_BYTES) == []
    assert reader.error is None
    assert reader.receive_data(b"x") == []
    assert reader.error is not None and reader.error.code == "FRAME_TOO_LARGE"


def test_an_invalid_frame_wins_over_a_later_overflow() -> None:
    reader = FrameReader(max_bytes=64)
    reader.receive_data(b"[1]\n" + b"x" * 65)
    assert reader.error is not None and reader.error.code == "INVALID_FRAME"


def test_reader_takes_no_input_after_an_error() -> None:
    reader = FrameReader()
    reader.receive_data(b"nope\n")
    error = reader.error
    assert reader.receive_data(PING) == []
    assert reader.error is error
