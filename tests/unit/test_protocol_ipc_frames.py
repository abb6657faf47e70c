"""Parsing and encoding IPC frames; error codes (spec §2.1, §2.2, §2.11)."""

from __future__ import annotations

import orjson
import pytest

from clawgate.protocol.ipc import frames as f
from clawgate.protocol.ipc.frames import (
    Event,
    FrameError,
    IpcError,
    Request,
    Response,
    encode_error,
    parse_frame,
)


def test_request_without_params_gets_empty_params() -> None:
    assert parse_frame(b'{"type":"req","id":"1","method":"ping"}') == Request("1", "ping", {})


def test_frame_with_id_and_ok_but_no_type_is_a_response() -> None:
    frame = parse_frame(b'{"id":"7","ok":true}')
    assert frame == Response("7", True, {})


def test_failed_response_carries_error_with_default_retryable() -> None:
    frame = parse_frame(
        b'{"type":"res","id":"7","ok":false,"error":{"code":"TIMEOUT","message":"m"}}'
    )
    assert isinstance(frame, Response) and frame.error is not None
    assert (frame.error.code, frame.error.retryable) == ("TIMEOUT", True)


def test_event_parses() -> None:
    assert parse_frame(b'{"type":"event","event":"x.y"}') == Event("x.y", {})


def test_unknown_type_is_ignored() -> None:
    assert parse_frame(b'{"type":"gossip"}') is None


@pytest.mark.parametrize(
    "line",
    [b"\xff\xfe", b"{not json", b"[1,2]", b'"s"', b'{"type":"req","method":"ping"}'],
)
def test_undecodable_frames_are_invalid_without_id(line: bytes) -> None:
    with pytest.raises(FrameError) as caught:
        parse_frame(line)
    assert caught.value.code == f.INVALID_FRAME
    assert caught.value.reply_id is None


def test_request_without_method_is_invalid_with_its_id() -> None:
    with pytest.raises(FrameError) as caught:
        parse_frame(b'{"type":"req","id":"abc","method":5}')
    assert caught.value.reply_id == "abc"


def test_request_id_longer_than_128_is_invalid() -> None:
    with pytest.raises(FrameError):
        parse_frame(orjson.dumps({"type": "req", "id": "x" * 129, "method": "ping"}))


def test_ipc_error_defaults_and_wire_shape() -> None:
    error = IpcError(f.PLUGIN_DISCONNECTED, "gone", {"a": 1})
    assert error.to_error() == {
        "code": "PLUGIN_DISCONNECTED",
        "message": "gone",
        "details": {"a": 1},
        "retryable": True,
    }
    assert IpcError(f.NOT_FOUND, "x").to_error() == {
        "code": "NOT_FOUND",
        "message": "x",
        "retryable": False,
    }
    assert IpcError(f.NOT_FOUND, "x", retryable=True).retryable


def test_every_code_has_a_default_retryable() -> None:
    codes = [v for k, v in vars(f).items() if k.isupper() and isinstance(v, str)]
    assert set(codes) == set(f.DEFAULT_RETRYABLE)


def test_error_frame_with_null_id() -> None:
    frame = orjson.loads(encode_error(None, IpcError(f.FRAME_TOO_LARGE, "big")))
    assert frame["id"] is None and frame["ok"] is False
    assert frame["error"]["code"] == "FRAME_TOO_LARGE"
