"""Command records: target keys, COMMAND parsing and the secret-free persisted form."""

from __future__ import annotations

import json
from typing import Any

import pytest

from clawgate.commands.model import (
    INVALID_PARAMS,
    Command,
    CommandError,
    CommandState,
    InvalidCommand,
    ack_payload,
    parse_command,
    parse_target,
)

SECRET = "s3cr3t-value-xyz"


def frame(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "commandId": "c1",
        "name": "notes.create",
        "target": {"capability": "notes"},
        "params": {"title": "hello"},
        "secrets": {"token": SECRET},
        "idempotencyKey": "k1",
        "issuedAt": "2026-11-23T20:17:05.123Z",
        "expiresAt": 1_900_000_000_000,
        "timeoutMs": 5000,
    }
    base.update(changes)
    return base


@pytest.mark.parametrize(
    ("target", "key"),
    [
        ({"capability": "notes.write"}, "capability:notes.write"),
        ({"integrationId": "gh"}, "integration:gh"),
        ({"plugin": "desk"}, "plugin:desk"),
    ],
)
def test_parse_target_builds_the_target_key(target: dict[str, str], key: str) -> None:
    assert parse_target(target) == key


@pytest.mark.parametrize(
    "target",
    [{}, {"capability": "a", "plugin": "b"}, {"host": "x"}, {"plugin": ""}, {"plugin": 3}, "x"],
)
def test_parse_target_rejects_anything_but_one_known_key(target: object) -> None:
    with pytest.raises(InvalidCommand) as caught:
        parse_target(target)
    assert caught.value.to_error().code == INVALID_PARAMS


def test_parse_command_keeps_secret_values_out_of_the_record() -> None:
    command, secrets = parse_command(frame(), now=5)
    assert secrets == {"token": SECRET}
    assert command.secret_names == ("token",)
    assert command.issued_at == 1_795_465_025_123
    assert command.target_key == "capability:notes"
    assert SECRET not in json.dumps(command.to_json())
    assert SECRET not in repr(command)


def test_parse_command_reports_every_invalid_field_with_the_command_id() -> None:
    with pytest.raises(InvalidCommand) as caught:
        parse_command(frame(name="", target={"a": 1, "b": 2}, timeoutMs=-1), now=0)
    assert caught.value.command_id == "c1"
    assert {e["path"] for e in caught.value.errors} == {"name", "target", "timeoutMs"}


def test_parse_command_never_echoes_malformed_secret_values() -> None:
    with pytest.raises(InvalidCommand) as caught:
        parse_command(frame(secrets={"token": [SECRET]}), now=0)
    assert SECRET not in json.dumps(caught.value.to_error().to_json())


def test_parse_command_requires_a_command_id() -> None:
    with pytest.raises(InvalidCommand) as caught:
        parse_command(frame(commandId=None), now=0)
    assert caught.value.command_id is None


def test_record_round_trips_through_json() -> None:
    command, _ = parse_command(frame(), now=5)
    command = command.evolve(
        state=CommandState.FAILED,
        attempt=2,
        error=CommandError("TIMEOUT", "slow", retryable=True, details={"a": 1}),
        terminal_at=9,
    )
    assert Command.from_json(json.loads(json.dumps(command.to_json()))) == command


def test_succeeded_is_acked_as_done() -> None:
    assert CommandState.SUCCEEDED.ack_state == "done"
    assert CommandState.QUEUED.ack_state == "queued"


def test_ack_payload_of_a_queued_command_carries_its_position() -> None:
    command, _ = parse_command(frame(), now=5)
    ack = ack_payload(command, at=1_795_465_025_123, queue_position=2)
    assert ack == {
        "commandId": "c1",
        "state": "queued",
        "attempt": 0,
        "at": "2026-11-23T20:17:05.123Z",
        "queuePosition": 2,
    }


def test_ack_payload_of_a_terminal_command_carries_result_or_error() -> None:
    command, _ = parse_command(frame(), now=5)
    done = ack_payload(command.evolve(state=CommandState.SUCCEEDED, result=[1]), at=0)
    assert done["state"] == "done" and done["result"] == [1]
    error = CommandError("EXPIRED", "late", False, {"reason": "deadline"})
    expired = ack_payload(command.evolve(state=CommandState.EXPIRED, error=error), at=0)
    assert expired["error"] == error.to_json() and "result" not in expired
