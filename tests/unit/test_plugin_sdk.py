"""Plugin SDK without sockets: framing, errors, handler answers (control-plane spec §2)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from clawgate.plugin import MAX_FRAME_BYTES, Plugin, PluginError, PluginState
from clawgate.plugin._framing import (
    EventFrame,
    FrameError,
    NdjsonDecoder,
    RequestFrame,
    ResponseFrame,
    UnknownFrame,
    encode_frame,
    error_frame,
    parse_frame,
)

LOG = logging.LoggerAdapter(logging.getLogger("test"), {})


# -- NdjsonDecoder ---------------------------------------------------------------------


def test_decoder_splits_lines_and_keeps_the_partial_tail() -> None:
    d = NdjsonDecoder()
    assert d.feed(b'{"a":1}\n{"b"') == [b'{"a":1}']
    assert d.buffered == 4
    assert d.feed(b":2}\n") == [b'{"b":2}']
    assert d.buffered == 0


def test_decoder_strips_one_cr_and_ignores_empty_lines() -> None:
    d = NdjsonDecoder()
    assert d.feed(b"\n\r\n{}\r\n{}\r\r\n") == [b"{}", b"{}\r"]


def test_decoder_accepts_a_line_of_exactly_the_limit() -> None:
    d = NdjsonDecoder(max_line=10)
    assert d.feed(b"x" * 10 + b"\n") == [b"x" * 10]


def test_decoder_rejects_a_long_line() -> None:
    d = NdjsonDecoder(max_line=10)
    with pytest.raises(FrameError) as info:
        d.feed(b"x" * 11 + b"\n")
    assert info.value.code == "FRAME_TOO_LARGE"


def test_decoder_does_not_buffer_beyond_the_limit_without_newline() -> None:
    d = NdjsonDecoder(max_line=10)
    d.feed(b"x" * 10)
    with pytest.raises(FrameError):
        d.feed(b"y")
    assert d.buffered == 0


def test_decoder_stays_failed() -> None:
    d = NdjsonDecoder(max_line=1)
    with pytest.raises(FrameError):
        d.feed(b"xx")
    with pytest.raises(FrameError):
        d.feed(b"\n")


def test_default_limit_is_one_mebibyte() -> None:
    assert MAX_FRAME_BYTES == 1_048_576
    d = NdjsonDecoder()
    assert len(d.feed(b"a" * MAX_FRAME_BYTES + b"\n")[0]) == MAX_FRAME_BYTES


# -- parse_frame -----------------------------------------------------------------------


def test_parse_request_defaults_params() -> None:
    assert parse_frame(b'{"type":"req","id":"1","method":"ping"}') == RequestFrame("1", "ping", {})


def test_parse_request_without_id_is_invalid() -> None:
    with pytest.raises(FrameError) as info:
        parse_frame(b'{"type":"req","method":"ping"}')
    assert (info.value.code, info.value.frame_id) == ("INVALID_FRAME", None)


def test_parse_request_without_method_keeps_the_id() -> None:
    with pytest.raises(FrameError) as info:
        parse_frame(b'{"type":"req","id":"7"}')
    assert (info.value.code, info.value.frame_id) == ("INVALID_FRAME", "7")


def test_parse_request_with_overlong_id_is_invalid() -> None:
    frame = {"type": "req", "id": "x" * 129, "method": "m"}
    with pytest.raises(FrameError):
        parse_frame(orjson.dumps(frame))


def test_parse_request_with_non_object_params_is_invalid() -> None:
    with pytest.raises(FrameError):
        parse_frame(b'{"type":"req","id":"1","method":"m","params":[]}')


@pytest.mark.parametrize("line", [b"not json", b"[1,2]", b'"s"', b"\xff\xfe{}"])
def test_parse_garbage_is_invalid(line: bytes) -> None:
    with pytest.raises(FrameError) as info:
        parse_frame(line)
    assert info.value.code == "INVALID_FRAME"


def test_parse_response_without_type_is_a_response() -> None:
    assert parse_frame(b'{"id":"1","ok":true,"payload":{"x":1}}') == ResponseFrame(
        "1", True, {"x": 1}, None
    )


def test_parse_failure_response() -> None:
    frame = parse_frame(b'{"type":"res","id":null,"ok":false,"error":{"code":"X"}}')
    assert frame == ResponseFrame(None, False, {}, {"code": "X"})


def test_parse_event_and_unknown_type() -> None:
    assert parse_frame(b'{"type":"event","event":"e"}') == EventFrame("e", {})
    assert parse_frame(b'{"type":"gossip"}') == UnknownFrame("gossip")


def test_encode_frame_is_one_line() -> None:
    data = encode_frame({"a": "line\nbreak"})
    assert data.endswith(b"\n") and data.count(b"\n") == 1


def test_error_frame_shape() -> None:
    assert error_frame("1", "TIMEOUT", "late", retryable=True) == {
        "type": "res",
        "id": "1",
        "ok": False,
        "error": {"code": "TIMEOUT", "message": "late", "retryable": True},
    }


# -- PluginError -----------------------------------------------------------------------


def test_plugin_error_retryable_defaults_per_code() -> None:
    assert PluginError("TIMEOUT", "x").retryable is True
    assert PluginError("UNAVAILABLE", "x").retryable is True
    assert PluginError("NOT_FOUND", "x").retryable is False
    assert PluginError("MY_CODE", "x").retryable is False
    assert PluginError("TIMEOUT", "x", retryable=False).retryable is False


def test_plugin_error_from_wire() -> None:
    err = PluginError.from_wire({"code": "NOT_FOUND", "message": "m", "details": {"a": 1}})
    assert (err.code, err.message, err.details, err.retryable) == (
        "NOT_FOUND",
        "m",
        {"a": 1},
        False,
    )


# -- Plugin construction and handlers ---------------------------------------------------


@pytest.mark.parametrize("name", ["", "Upper", "-x", "a" * 65])
def test_plugin_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError):
        Plugin(name, version="1")


@pytest.mark.parametrize("caps", [["Bad"], ["a", "a"], [f"c{i}" for i in range(65)]])
def test_plugin_rejects_bad_capabilities(caps: list[str]) -> None:
    with pytest.raises(ValueError):
        Plugin("p", version="1", capabilities=caps)


def test_plugin_starts_idle() -> None:
    plugin = Plugin("p", version="1")
    assert plugin.state is PluginState.IDLE
    assert plugin.registration is None


def test_duplicate_handler_is_rejected() -> None:
    plugin = Plugin("p", version="1")

    @plugin.handler("x")
    async def one(params: dict[str, Any]) -> dict[str, Any]:
        return {}

    with pytest.raises(ValueError):
        plugin.handler("x")(one)


async def answer(plugin: Plugin, method: str, params: dict[str, Any] | None = None) -> Any:
    """Return the decoded response the plugin gives to one request."""
    data = await plugin._answer(RequestFrame("r1", method, params or {}), LOG)
    assert data.endswith(b"\n")
    return orjson.loads(data)


async def test_ping_answers_now_in_rfc3339_ms() -> None:
    fixed = datetime(2026, 11, 23, 20, 17, 5, 123456, tzinfo=UTC)
    plugin = Plugin("p", version="1", now=lambda: fixed)
    assert await answer(plugin, "ping") == {
        "type": "res",
        "id": "r1",
        "ok": True,
        "payload": {"now": "2026-11-23T20:17:05.123Z"},
    }


async def test_unknown_method_is_method_not_found() -> None:
    res = await answer(Plugin("p", version="1"), "nope")
    assert res["ok"] is False and res["error"]["code"] == "METHOD_NOT_FOUND"


async def test_handler_result_becomes_payload_and_none_is_empty() -> None:
    plugin = Plugin("p", version="1")

    @plugin.handler("a")
    async def a(params: dict[str, Any]) -> dict[str, Any]:
        return {"echo": params}

    @plugin.handler("b")
    async def b(params: dict[str, Any]) -> None:
        return None

    assert (await answer(plugin, "a", {"x": 1}))["payload"] == {"echo": {"x": 1}}
    assert (await answer(plugin, "b"))["payload"] == {}


async def test_plugin_error_chooses_the_code() -> None:
    plugin = Plugin("p", version="1")

    @plugin.handler("a")
    async def a(params: dict[str, Any]) -> dict[str, Any]:
        raise PluginError("DISK_FULL", "no space", retryable=True, details={"free": 0})

    assert (await answer(plugin, "a"))["error"] == {
        "code": "DISK_FULL",
        "message": "no space",
        "retryable": True,
        "details": {"free": 0},
    }


async def test_unexpected_exception_is_internal_without_its_text() -> None:
    plugin = Plugin("p", version="1")

    @plugin.handler("a")
    async def a(params: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("token=sk-secret")

    error = (await answer(plugin, "a"))["error"]
    assert error["code"] == "INTERNAL"
    assert "sk-secret" not in error["message"]
    assert "RuntimeError" in error["message"]


async def test_non_object_result_is_internal() -> None:
    plugin = Plugin("p", version="1")

    @plugin.handler("a")
    async def a(params: dict[str, Any]) -> Any:
        return [1, 2]

    assert (await answer(plugin, "a"))["error"]["code"] == "INTERNAL"


async def test_oversized_result_is_internal() -> None:
    plugin = Plugin("p", version="1")

    @plugin.handler("a")
    async def a(params: dict[str, Any]) -> dict[str, Any]:
        return {"blob": "x" * MAX_FRAME_BYTES}

    assert (await answer(plugin, "a"))["error"]["code"] == "INTERNAL"


async def test_call_without_connection_is_not_connected() -> None:
    with pytest.raises(PluginError) as info:
        await Plugin("p", version="1").call("status")
    assert (info.value.code, info.value.retryable) == ("UNAVAILABLE", True)


async def test_report_rejects_unknown_status() -> None:
    with pytest.raises(ValueError):
        await Plugin("p", version="1").report("i", "broken")


async def test_stop_before_run_returns() -> None:
    await Plugin("p", version="1").stop()
