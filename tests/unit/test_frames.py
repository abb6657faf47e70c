"""Frame parsing and encoding, without sockets."""

import orjson
import pytest

from clawgate.protocol.errors import FORBIDDEN, Forbidden, InvalidRequest
from clawgate.protocol.frames import (
    INVALID_ID,
    FrameError,
    PreparedEvent,
    encode_error,
    encode_event,
    encode_response,
    parse_request,
)


def test_parse_request_accepts_minimal_request() -> None:
    frame = parse_request('{"type":"req","id":"1","method":"health"}')
    assert (frame.id, frame.method, frame.params) == ("1", "health", None)


@pytest.mark.parametrize("text", ["not json", "[1,2]", '"text"', "NaN", '{"a":Infinity}'])
def test_parse_request_rejects_non_objects_with_invalid_id(text: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_request(text)
    assert caught.value.reply_id == INVALID_ID
    assert caught.value.message == "invalid request frame: not a JSON object"


def test_parse_request_answers_with_the_frames_id_when_usable() -> None:
    with pytest.raises(FrameError) as caught:
        parse_request('{"type":"req","id":"abc","method":"x","bogus":1}')
    assert caught.value.reply_id == "abc"
    assert caught.value.message == "invalid request frame: at root: unexpected property 'bogus'"


def test_parse_request_numeric_id_gets_invalid_reply_id() -> None:
    with pytest.raises(FrameError) as caught:
        parse_request('{"type":"req","id":1,"method":"x"}')
    assert caught.value.reply_id == INVALID_ID
    assert "at /id" in caught.value.message


def test_parse_request_names_missing_member() -> None:
    with pytest.raises(FrameError) as caught:
        parse_request('{"type":"req","id":"1"}')
    assert "must have required property 'method'" in caught.value.message


def test_parse_request_rejects_too_long_id() -> None:
    with pytest.raises(FrameError) as caught:
        parse_request(orjson.dumps({"type": "req", "id": "x" * 257, "method": "m"}))
    assert caught.value.reply_id == INVALID_ID


def test_prepared_event_appends_seq_to_one_serialisation() -> None:
    prepared = PreparedEvent.build("tick", {"ts": 5})
    assert orjson.loads(prepared.with_seq(7)) == {
        "type": "event",
        "event": "tick",
        "payload": {"ts": 5},
        "seq": 7,
    }


def test_prepared_event_carries_state_version() -> None:
    prepared = PreparedEvent.build("presence", {"presence": []}, {"presence": 2, "health": 1})
    frame = orjson.loads(prepared.with_seq(1))
    assert frame["stateVersion"] == {"presence": 2, "health": 1}


def test_targeted_event_has_no_seq() -> None:
    assert "seq" not in orjson.loads(encode_event("connect.challenge", {"nonce": "n", "ts": 1}))


def test_response_and_error_shapes() -> None:
    assert orjson.loads(encode_response("1", {"a": 1})) == {
        "type": "res",
        "id": "1",
        "ok": True,
        "payload": {"a": 1},
    }
    error = orjson.loads(encode_error("2", InvalidRequest("bad", details={"code": "X"})))
    assert error == {
        "type": "res",
        "id": "2",
        "ok": False,
        "error": {"code": "INVALID_REQUEST", "message": "bad", "details": {"code": "X"}},
    }


def test_v4_only_codes_are_sent_as_invalid_request_on_protocol_3() -> None:
    forbidden = Forbidden("missing scope: operator.admin")
    assert orjson.loads(encode_error("1", forbidden, protocol=4))["error"]["code"] == FORBIDDEN
    v3 = orjson.loads(encode_error("1", forbidden, protocol=3))["error"]
    assert v3 == {"code": "INVALID_REQUEST", "message": "missing scope: operator.admin"}
