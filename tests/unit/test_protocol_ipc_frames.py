"""Parsing and encoding IPC frames; error codes (spec §2.1, §2.2, §2.11).

Both ends of the wire parse with these functions; `tests/integration/test_ipc_strictness.py`
shows the daemon and the SDK answering the same bad frames the same way over real sockets.
"""

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
    UnknownFrame,
    encode_error,
    encode_event,
    encode_request,
    encode_response,
    parse_frame,
)
from clawgate.protocol.ipc.framing import MAX_FRAME_BYTES


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
    assert parse_frame(b'{"type":"gossip"}') == UnknownFrame("gossip")


def test_object_without_type_and_without_ok_is_unknown() -> None:
    assert parse_frame(b'{"id":"1","method":"ping"}') == UnknownFrame(None)


@pytest.mark.parametrize(
    "line",
    [
        b"\xff\xfe",
        b"\xff\xfe{}",
        b"{not json",
        b"not json",
        b"[1,2]",
        b'"s"',
        b"NaN",
        b'{"type":"req","method":"ping"}',
    ],
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


def test_request_with_null_params_gets_empty_params() -> None:
    line = b'{"type":"req","id":"1","method":"m","params":null}'
    assert parse_frame(line) == Request("1", "m", {})


def test_request_id_longer_than_128_is_invalid() -> None:
    with pytest.raises(FrameError):
        parse_frame(orjson.dumps({"type": "req", "id": "x" * 129, "method": "ping"}))


def test_request_id_of_128_characters_is_accepted() -> None:
    frame = parse_frame(orjson.dumps({"type": "req", "id": "x" * 128, "method": "ping"}))
    assert frame == Request("x" * 128, "ping", {})


def test_response_without_type_keeps_its_payload() -> None:
    assert parse_frame(b'{"id":"1","ok":true,"payload":{"x":1}}') == Response("1", True, {"x": 1})


def test_failure_with_null_id_is_a_connection_level_error() -> None:
    frame = parse_frame(b'{"type":"res","id":null,"ok":false,"error":{"code":"X"}}')
    assert isinstance(frame, Response) and frame.error is not None
    assert (frame.id, frame.ok, frame.payload) == (None, False, {})
    assert (frame.error.code, frame.error.message, frame.error.retryable) == ("X", "", False)


def _res(**members: object) -> bytes:
    return orjson.dumps({"type": "res", "id": "1", **members})


# One row per rule; the daemon and the SDK both apply every one (test_ipc_strictness.py).
MALFORMED = [
    pytest.param(b'{"type":"req","id":"7"}', "7", id="request-method-missing"),
    pytest.param(b'{"type":"req","id":"7","method":""}', "7", id="request-method-empty"),
    pytest.param(b'{"type":"req","id":"7","method":"m","params":[]}', "7", id="params-array"),
    pytest.param(b'{"type":"req","id":"7","method":"m","params":"x"}', "7", id="params-string"),
    pytest.param(b'{"type":"req","id":"","method":"m"}', None, id="request-id-empty"),
    pytest.param(orjson.dumps({"type": "req", "id": "x" * 129}), None, id="request-id-129"),
    pytest.param(_res(ok="true"), None, id="ok-string"),
    pytest.param(_res(ok=1), None, id="ok-number"),
    pytest.param(_res(ok=None), None, id="ok-null"),
    pytest.param(_res(), None, id="ok-missing"),
    pytest.param(_res(id=5, ok=True), None, id="response-id-number"),
    pytest.param(_res(id="", ok=True), None, id="response-id-empty"),
    pytest.param(_res(id="x" * 129, ok=True), None, id="response-id-129"),
    pytest.param(_res(id=["1"], ok=True), None, id="response-id-array"),
    pytest.param(_res(ok=True, payload=[1]), None, id="payload-array"),
    pytest.param(_res(ok=True, payload="x"), None, id="payload-string"),
    pytest.param(_res(ok=True, payload=True), None, id="payload-boolean"),
    pytest.param(_res(ok=False), None, id="error-missing"),
    pytest.param(_res(ok=False, error=None), None, id="error-null"),
    pytest.param(_res(ok=False, error="boom"), None, id="error-string"),
    pytest.param(_res(ok=False, error=[1]), None, id="error-array"),
    pytest.param(b'{"type":"event"}', None, id="event-name-missing"),
    pytest.param(b'{"type":"event","event":5}', None, id="event-name-number"),
    pytest.param(b'{"type":"event","event":""}', None, id="event-name-empty"),
    pytest.param(b'{"type":"event","event":"e","payload":3}', None, id="event-payload-number"),
    pytest.param(b'{"type":"event","event":"e","payload":[]}', None, id="event-payload-array"),
]


@pytest.mark.parametrize(("line", "reply_id"), MALFORMED)
def test_malformed_frame_is_invalid(line: bytes, reply_id: str | None) -> None:
    with pytest.raises(FrameError) as caught:
        parse_frame(line)
    assert (caught.value.code, caught.value.reply_id) == (f.INVALID_FRAME, reply_id)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"code": "", "message": "m"}, ("INTERNAL", "m", None, False)),
        ({"code": 5, "message": 7}, ("INTERNAL", "", None, False)),
        ({"message": "m", "retryable": "yes"}, ("INTERNAL", "m", None, False)),
        ({"code": "TIMEOUT", "details": [1]}, ("TIMEOUT", "", None, True)),
        (
            {"code": "MY_CODE", "details": {"a": 1}, "retryable": True},
            ("MY_CODE", "", {"a": 1}, True),
        ),
    ],
)
def test_odd_error_members_read_as_defaults(
    error: dict[str, object], expected: tuple[object, ...]
) -> None:
    frame = parse_frame(orjson.dumps({"type": "res", "id": "1", "ok": False, "error": error}))
    assert isinstance(frame, Response) and frame.error is not None
    got = (frame.error.code, frame.error.message, frame.error.details, frame.error.retryable)
    assert got == expected


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


def test_ipc_error_from_error_builds_the_subclass_it_is_called_on() -> None:
    class Sub(IpcError):
        pass

    error = Sub.from_error({"code": "NOT_FOUND", "message": "m"})
    assert type(error) is Sub
    assert repr(error) == "Sub('NOT_FOUND', 'm')"


def test_every_code_has_a_default_retryable() -> None:
    codes = [v for k, v in vars(f).items() if k.isupper() and isinstance(v, str)]
    assert set(codes) == set(f.DEFAULT_RETRYABLE)


def test_error_frame_with_null_id() -> None:
    frame = orjson.loads(encode_error(None, IpcError(f.FRAME_TOO_LARGE, "big")))
    assert frame["id"] is None and frame["ok"] is False
    assert frame["error"]["code"] == "FRAME_TOO_LARGE"


def test_error_frame_carries_retryable_and_details() -> None:
    error = IpcError(f.TIMEOUT, "late", {"ms": 5}, retryable=True)
    assert orjson.loads(encode_error("1", error)) == {
        "type": "res",
        "id": "1",
        "ok": False,
        "error": {
            "code": "TIMEOUT",
            "message": "late",
            "details": {"ms": 5},
            "retryable": True,
        },
    }


def test_encoded_frames_are_one_line_each() -> None:
    for data in (
        encode_request("1", "m", {"text": "a\nb"}),
        encode_response("1", {"text": "a\nb"}),
        encode_event("e", {"text": "a\nb"}),
    ):
        assert data.endswith(b"\n") and data.count(b"\n") == 1


def _pad(size: int, frame: bytes) -> str:
    """Return padding that brings `frame` (encoded with an empty pad) to `size` bytes."""
    return "x" * (size - (len(frame) - 1))


def test_request_of_exactly_one_mib_is_encoded() -> None:
    pad = _pad(MAX_FRAME_BYTES, encode_request("1", "m", {"pad": ""}))
    assert len(encode_request("1", "m", {"pad": pad})) == MAX_FRAME_BYTES + 1


def test_request_over_one_mib_is_refused_as_invalid_params() -> None:
    pad = _pad(MAX_FRAME_BYTES + 1, encode_request("1", "m", {"pad": ""}))
    with pytest.raises(IpcError) as caught:
        encode_request("1", "m", {"pad": pad})
    assert (caught.value.code, caught.value.retryable) == (f.INVALID_PARAMS, False)
    assert "over the 1 MiB frame limit" in caught.value.message


def test_response_over_one_mib_is_refused_as_internal() -> None:
    pad = _pad(MAX_FRAME_BYTES + 1, encode_response("1", {"pad": ""}))
    assert len(encode_response("1", {"pad": pad[1:]})) == MAX_FRAME_BYTES + 1
    with pytest.raises(IpcError) as caught:
        encode_response("1", {"pad": pad})
    assert (caught.value.code, caught.value.retryable) == (f.INTERNAL, False)
