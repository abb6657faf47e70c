"""Plugin SDK without sockets: errors, registration checks, handler answers (spec §2).

The SDK frames and parses with `clawgate.protocol.ipc`, tested in `test_protocol_ipc_*.py`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from clawgate.plugin import (
    DEFAULT_RETRYABLE,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    NotConnectedError,
    Plugin,
    PluginError,
    PluginState,
)
from clawgate.protocol.ipc import frames, framing, registration
from clawgate.protocol.ipc.frames import IpcError, Request

LOG = logging.LoggerAdapter(logging.getLogger("test"), {})


def test_public_constants_are_the_wires() -> None:
    assert MAX_FRAME_BYTES == framing.MAX_FRAME_BYTES == 1_048_576
    assert DEFAULT_RETRYABLE is frames.DEFAULT_RETRYABLE
    assert PROTOCOL_VERSION == registration.PROTOCOL_MAX == 1


# -- PluginError -----------------------------------------------------------------------


def test_plugin_error_retryable_defaults_per_code() -> None:
    assert PluginError("TIMEOUT", "x").retryable is True
    assert PluginError("UNAVAILABLE", "x").retryable is True
    assert PluginError("NOT_FOUND", "x").retryable is False
    assert PluginError("MY_CODE", "x").retryable is False
    assert PluginError("TIMEOUT", "x", retryable=False).retryable is False


def test_plugin_errors_are_wire_errors() -> None:
    error = PluginError("NOT_FOUND", "gone", details={"id": "x"})
    assert isinstance(error, IpcError)
    assert error.to_error() == {
        "code": "NOT_FOUND",
        "message": "gone",
        "details": {"id": "x"},
        "retryable": False,
    }
    assert str(error) == "NOT_FOUND: gone"
    assert isinstance(NotConnectedError(), PluginError)


def test_plugin_error_from_wire_reads_odd_members_as_the_daemon_does() -> None:
    wire = {"code": "", "message": 5, "details": [1], "retryable": "yes"}
    err = PluginError.from_wire(wire)
    daemon = IpcError.from_error(wire)
    assert type(err) is PluginError
    assert (err.code, err.message, err.details, err.retryable) == ("INTERNAL", "", None, False)
    assert (err.code, err.message, err.details, err.retryable) == (
        daemon.code,
        daemon.message,
        daemon.details,
        daemon.retryable,
    )


def test_plugin_error_from_wire() -> None:
    err = PluginError.from_wire({"code": "NOT_FOUND", "message": "m", "details": {"a": 1}})
    assert (err.code, err.message, err.details, err.retryable) == (
        "NOT_FOUND",
        "m",
        {"a": 1},
        False,
    )


# -- Plugin construction and handlers ---------------------------------------------------


@pytest.mark.parametrize("name", ["", "Upper", "-x", "a" * 65, "agent\n"])
def test_plugin_rejects_bad_names(name: str) -> None:
    with pytest.raises(ValueError):
        Plugin(name, version="1")


@pytest.mark.parametrize(
    "caps", [["Bad"], ["a", "a"], [f"c{i}" for i in range(65)], ["mail\n"], ["a."]]
)
def test_plugin_rejects_bad_capabilities(caps: list[str]) -> None:
    with pytest.raises(ValueError):
        Plugin("p", version="1", capabilities=caps)


def test_plugin_rejects_an_empty_version() -> None:
    with pytest.raises(ValueError, match="/version"):
        Plugin("p", version="")


def test_plugin_error_names_every_broken_rule() -> None:
    with pytest.raises(ValueError) as info:
        Plugin("Bad", version="1", capabilities=["ok", "Bad"])
    assert "/name" in str(info.value) and "/capabilities/1" in str(info.value)


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
    data = await plugin._handlers.answer(Request("r1", method, params or {}), LOG)
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
    assert res["error"]["retryable"] is False


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
