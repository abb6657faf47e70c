"""Control-link wire rules: envelope, payload models, versions (control-plane spec §3)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from clawgate.protocol.control_link import (
    CLOSE_PROTOCOL_VIOLATION,
    CLOSE_SERVICE_RESTART,
    CLOSE_SESSION_REPLACED,
    CLOSE_UNAUTHORIZED,
    CLOSE_UPGRADE_REQUIRED,
    DEFAULT_HEARTBEAT_MS,
    DEFAULT_MAX_MESSAGE_BYTES,
    Command,
    CommandAck,
    CommandState,
    DesiredState,
    InvalidMessage,
    MessageType,
    Ping,
    ReconciliationReport,
    ServiceRegister,
    dead_after_ms,
    envelope,
    negotiate_version,
    parse_envelope,
    parse_payload,
)
from clawgate.protocol.timefmt import format_time

T0 = 1_795_000_000.123
TS = format_time(T0)


def register_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "daemonId": str(uuid.uuid4()),
        "daemonVersion": "0.1.0",
        "protocolVersion": 1,
        "hostname": "box",
        "platform": "linux",
        "arch": "x86_64",
        "plugins": [
            {
                "name": "p",
                "version": "1",
                "protocolVersion": 1,
                "capabilities": ["integrations"],
                "connectedAt": TS,
            }
        ],
        "lastAppliedRevision": 0,
        "queueDepth": 0,
    }
    payload.update(overrides)
    return payload


def test_constants_match_the_spec() -> None:
    assert (CLOSE_PROTOCOL_VIOLATION, CLOSE_UNAUTHORIZED, CLOSE_SESSION_REPLACED) == (
        4400,
        4401,
        4409,
    )
    assert (CLOSE_UPGRADE_REQUIRED, CLOSE_SERVICE_RESTART) == (4426, 1012)
    assert DEFAULT_HEARTBEAT_MS == 20_000
    assert dead_after_ms(DEFAULT_HEARTBEAT_MS) == 50_000
    assert DEFAULT_MAX_MESSAGE_BYTES == 16 * 1024 * 1024


def test_envelope_has_fresh_id_and_clock_time() -> None:
    first = envelope(MessageType.PING, Ping(nonce="n1"), clock=lambda: T0)
    second = envelope(MessageType.PING, {"nonce": "n2"}, clock=lambda: T0)
    assert first["ts"] == "2026-11-18T11:06:40.123Z"
    assert first["payload"] == {"nonce": "n1"}
    assert first["id"] != second["id"]
    uuid.UUID(first["id"])
    assert "replyTo" not in first


def test_envelope_carries_reply_to() -> None:
    message = envelope(MessageType.PONG, {"nonce": "x"}, reply_to="abc")
    assert message["replyTo"] == "abc"
    assert parse_envelope(message).replyTo == "abc"


def test_parse_envelope_keeps_unknown_types_for_the_caller() -> None:
    parsed = parse_envelope({"type": "FUTURE", "id": "1", "ts": TS, "payload": {}})
    assert parsed.known_type is None
    assert parse_envelope({"type": "PING", "id": "1", "ts": TS, "payload": {}}).known_type is (
        MessageType.PING
    )


@pytest.mark.parametrize(
    ("obj", "path"),
    [
        ([], ""),
        ({"id": "1", "ts": TS, "payload": {}}, "type"),
        ({"type": "PING", "id": "", "ts": TS, "payload": {}}, "id"),
        ({"type": "PING", "id": "1", "ts": "yesterday", "payload": {}}, "ts"),
        ({"type": "PING", "id": "1", "ts": TS, "payload": []}, "payload"),
    ],
)
def test_parse_envelope_names_the_broken_field(obj: object, path: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_envelope(obj)
    assert caught.value.errors[0]["path"] == path


def test_unknown_fields_are_ignored() -> None:
    parsed = parse_payload(MessageType.SERVICE_REGISTER, register_payload(future="x"))
    assert isinstance(parsed, ServiceRegister)
    assert "future" not in parsed.model_dump()


def test_register_reports_every_problem_with_dotted_paths() -> None:
    payload = register_payload(platform="windows", queueDepth=-1)
    payload["plugins"][0]["capabilities"] = ["Bad Cap"]
    del payload["hostname"]
    with pytest.raises(InvalidMessage) as caught:
        parse_payload(MessageType.SERVICE_REGISTER, payload)
    paths = {issue["path"] for issue in caught.value.errors}
    assert paths == {"platform", "queueDepth", "plugins[0].capabilities[0]", "hostname"}
    missing = next(i for i in caught.value.errors if i["path"] == "hostname")
    assert missing["message"] == "is required"


def test_command_target_needs_exactly_one_kind() -> None:
    base = {"commandId": "c1", "name": "github.sync", "params": {}, "issuedAt": TS}
    ok = parse_payload(MessageType.COMMAND, {**base, "target": {"integrationId": "github"}})
    assert isinstance(ok, Command)
    for target in ({}, {"capability": "x", "plugin": "p"}):
        with pytest.raises(InvalidMessage) as caught:
            parse_payload(MessageType.COMMAND, {**base, "target": target})
        assert caught.value.errors[0]["path"] == "target"
        assert "exactly one" in caught.value.errors[0]["message"]


def test_command_name_follows_manifest_syntax() -> None:
    payload = {
        "commandId": "c1",
        "name": "Sync!",
        "target": {"plugin": "p"},
        "params": {},
        "issuedAt": TS,
    }
    with pytest.raises(InvalidMessage) as caught:
        parse_payload(MessageType.COMMAND, payload)
    assert caught.value.errors[0]["path"] == "name"


def test_errors_never_echo_secret_values() -> None:
    payload = {
        "commandId": "c1",
        "name": "x",
        "target": {"plugin": "p"},
        "params": {},
        "issuedAt": TS,
        "secrets": {"token": 12345678},
    }
    with pytest.raises(InvalidMessage) as caught:
        parse_payload(MessageType.COMMAND, payload)
    assert "12345678" not in str(caught.value)
    assert "12345678" not in repr(caught.value.errors)


def test_failed_ack_must_carry_an_error() -> None:
    base = {"commandId": "c1", "attempt": 1, "at": TS}
    with pytest.raises(InvalidMessage):
        parse_payload(MessageType.COMMAND_ACK, {**base, "state": "failed"})
    ack = parse_payload(
        MessageType.COMMAND_ACK,
        {**base, "state": "failed", "error": {"code": "TIMEOUT", "message": "took too long"}},
    )
    assert isinstance(ack, CommandAck)
    assert ack.terminal
    queued = parse_payload(MessageType.COMMAND_ACK, {**base, "state": "queued"})
    assert queued.state is CommandState.QUEUED
    assert not queued.terminal


def test_desired_state_and_report_parse() -> None:
    desired = parse_payload(
        MessageType.DESIRED_STATE,
        {
            "revision": 3,
            "issuedAt": TS,
            "integrations": [
                {
                    "id": "github",
                    "version": "1.0.0",
                    "enabled": True,
                    "manifest": {"id": "github"},
                    "config": {"org": "x"},
                    "secrets": {"token": "s"},
                }
            ],
        },
    )
    assert isinstance(desired, DesiredState)
    assert desired.integrations[0].secrets == {"token": "s"}
    report = parse_payload(
        MessageType.RECONCILIATION_REPORT,
        {
            "revision": 3,
            "trigger": "desired_state",
            "startedAt": TS,
            "finishedAt": TS,
            "drift": False,
            "converged": True,
            "superseded": False,
            "integrations": [
                {
                    "id": "github",
                    "status": "active",
                    "version": "1.0.0",
                    "desiredVersion": "1.0.0",
                    "enabled": True,
                    "attempts": 0,
                    "updatedAt": TS,
                }
            ],
            "plugins": [{"name": "p", "version": "1", "connected": True}],
        },
    )
    assert isinstance(report, ReconciliationReport)
    with pytest.raises(InvalidMessage):
        parse_payload(MessageType.RECONCILIATION_REPORT, {**report.model_dump(), "trigger": "x"})


def test_negotiate_picks_highest_common_version() -> None:
    assert negotiate_version(1) == 1
    assert negotiate_version(3, 1) == 1
    assert negotiate_version(5, 2) is None
    assert negotiate_version(3, 2, ours=(1, 4)) == 3
    assert negotiate_version(1, ours=(2, 3)) is None
