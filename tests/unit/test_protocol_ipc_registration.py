"""Register params validation and protocol negotiation (spec §2.3, §2.4)."""

from __future__ import annotations

from typing import Any

import pytest

from clawgate.protocol.ipc.frames import INVALID_PARAMS, UNSUPPORTED_PROTOCOL, IpcError
from clawgate.protocol.ipc.registration import (
    PROTOCOL_MAX,
    PROTOCOL_MIN,
    negotiate_protocol,
    parse_register,
    register_params,
    register_result,
)


def _params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": "agent-1",
        "version": "1.0.0",
        "protocolVersion": 1,
        "capabilities": ["mail.send", "calendar"],
    }
    params.update(overrides)
    return params


def _errors(params: dict[str, Any]) -> list[dict[str, str]]:
    with pytest.raises(IpcError) as caught:
        parse_register(params)
    assert caught.value.code == INVALID_PARAMS
    assert caught.value.details is not None
    errors: list[dict[str, str]] = caught.value.details["errors"]
    return errors


def test_valid_params_parse_with_min_defaulting_to_max() -> None:
    parsed = parse_register(_params(pid=42))
    assert parsed.name == "agent-1"
    assert parsed.capabilities == ("mail.send", "calendar")
    assert parsed.min_protocol_version == 1
    assert parsed.pid == 42


@pytest.mark.parametrize("name", ["", "Agent", "-x", "a" * 65, "a b", 5])
def test_bad_name_is_reported_at_its_path(name: object) -> None:
    assert [e["path"] for e in _errors(_params(name=name))] == ["/name"]


@pytest.mark.parametrize("name", ["agent\n", "\nagent", "agent\r"])
def test_name_with_a_line_break_is_rejected(name: str) -> None:
    assert [e["path"] for e in _errors(_params(name=name))] == ["/name"]


def test_name_of_64_characters_is_accepted() -> None:
    assert parse_register(_params(name="a" * 64)).name == "a" * 64


@pytest.mark.parametrize(
    "capability", ["Mail", "mail.", ".mail", "1mail", "mail..send", "", "mail\n", 5]
)
def test_bad_capability_is_reported_at_its_index(capability: object) -> None:
    errors = _errors(_params(capabilities=["ok", capability]))
    assert [e["path"] for e in errors] == ["/capabilities/1"]


@pytest.mark.parametrize("version", ["", 1, None])
def test_version_must_be_a_non_empty_string(version: object) -> None:
    assert [e["path"] for e in _errors(_params(version=version))] == ["/version"]


def test_duplicate_capability_is_rejected() -> None:
    assert _errors(_params(capabilities=["a", "a"]))[0]["message"] == "duplicate capability"


def test_capabilities_limit_is_64() -> None:
    parse_register(_params(capabilities=[f"c{i}" for i in range(64)]))
    assert _errors(_params(capabilities=[f"c{i}" for i in range(65)]))[0]["path"] == "/capabilities"


def test_all_problems_are_collected() -> None:
    errors = _errors({"capabilities": "x"})
    paths = {e["path"] for e in errors}
    assert paths == {"/name", "/version", "/protocolVersion", "/capabilities"}


def test_register_params_round_trip_through_parse_register() -> None:
    params = register_params(
        name="agent-1", version="2.0", capabilities=["mail"], pid=7, runtime="python/3.11"
    )
    assert params == {
        "name": "agent-1",
        "version": "2.0",
        "protocolVersion": PROTOCOL_MAX,
        "minProtocolVersion": PROTOCOL_MIN,
        "capabilities": ["mail"],
        "pid": 7,
        "runtime": "python/3.11",
    }
    parsed = parse_register(params)
    assert (parsed.name, parsed.capabilities, parsed.pid) == ("agent-1", ("mail",), 7)
    assert negotiate_protocol(parsed.protocol_version, parsed.min_protocol_version) == 1


def test_register_params_leave_out_absent_optional_fields() -> None:
    params = register_params(name="a", version="1", capabilities=[])
    assert "pid" not in params and "runtime" not in params


def test_negotiation_picks_smaller_maximum() -> None:
    assert negotiate_protocol(3, 1) == 1


def test_negotiation_fails_without_overlap() -> None:
    with pytest.raises(IpcError) as caught:
        negotiate_protocol(3, 2)
    assert caught.value.code == UNSUPPORTED_PROTOCOL
    assert caught.value.details == {"supported": {"min": 1, "max": 1}}


def test_register_result_shape() -> None:
    assert register_result(
        daemon_version="0.1.0",
        protocol_version=1,
        daemon_id="d",
        connection_id="c",
        cloud_connected=False,
    ) == {
        "status": "registered",
        "daemonVersion": "0.1.0",
        "protocolVersion": 1,
        "daemonId": "d",
        "connectionId": "c",
        "cloudConnected": False,
    }
