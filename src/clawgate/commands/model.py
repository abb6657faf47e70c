"""The hub command record and its parsing (control-plane spec §2.9, §3.5, §4).

A ``Command`` holds everything §1.6 persists for a ``commandId``: never a secret value. The
values of a COMMAND's ``secrets`` object are returned separately by ``parse_command`` and
live only in ``CommandBook``'s memory (§4.4, §8).

Exceptions: ``InvalidCommand`` (a COMMAND fails validation; code ``INVALID_PARAMS``).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from ..protocol.timefmt import format_time_ms

__all__ = [
    "EXPIRED",
    "INVALID_PARAMS",
    "PLUGIN_DISCONNECTED",
    "QUEUE_FULL",
    "SECRETS_UNAVAILABLE",
    "TERMINAL_STATES",
    "TIMEOUT",
    "Command",
    "CommandError",
    "CommandState",
    "InvalidCommand",
    "ack_payload",
    "parse_command",
    "parse_target",
    "parse_time_ms",
]

INVALID_PARAMS: Final = "INVALID_PARAMS"
TIMEOUT: Final = "TIMEOUT"
PLUGIN_DISCONNECTED: Final = "PLUGIN_DISCONNECTED"
QUEUE_FULL: Final = "QUEUE_FULL"
EXPIRED: Final = "EXPIRED"
SECRETS_UNAVAILABLE: Final = "SECRETS_UNAVAILABLE"

#: Wire target field → target-key prefix (§2.9).
_TARGET_PREFIXES: Final = {
    "capability": "capability",
    "integrationId": "integration",
    "plugin": "plugin",
}


class CommandState(enum.Enum):
    """Where a command is in its life; the last four are terminal and final."""

    QUEUED = "queued"
    ACCEPTED = "accepted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        """Return whether the state is final."""
        return self in TERMINAL_STATES

    @property
    def ack_state(self) -> str:
        """Return the COMMAND_ACK ``state`` for this state (``succeeded`` is acked ``done``)."""
        return "done" if self is CommandState.SUCCEEDED else self.value


TERMINAL_STATES: Final = frozenset(
    {CommandState.SUCCEEDED, CommandState.FAILED, CommandState.REJECTED, CommandState.EXPIRED}
)


@dataclass(frozen=True, slots=True)
class CommandError:
    """A command's error as acked to the hub: ``{code, message, retryable, details?}``."""

    code: str
    message: str
    retryable: bool
    details: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the wire form."""
        data: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
        }
        if self.details is not None:
            data["details"] = self.details
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CommandError:
        """Build from the wire form."""
        return cls(
            code=str(data["code"]),
            message=str(data.get("message", "")),
            retryable=bool(data.get("retryable", False)),
            details=data.get("details"),
        )


class InvalidCommand(Exception):
    """A COMMAND failed validation; ``command_id`` is set when it could be read."""

    def __init__(self, errors: list[dict[str, str]], command_id: str | None = None) -> None:
        """Carry ``{path, message}`` entries for ``details.errors``."""
        super().__init__("; ".join(f"{e['path']}: {e['message']}" for e in errors))
        self.errors = errors
        self.command_id = command_id

    def to_error(self) -> CommandError:
        """Return the ``INVALID_PARAMS`` error to record and ack."""
        return CommandError(
            INVALID_PARAMS, "invalid command", retryable=False, details={"errors": self.errors}
        )


@dataclass(frozen=True, slots=True)
class Command:
    """The persisted record of one hub command; all times are integer milliseconds.

    ``deadline`` is the queue deadline ``Q`` fixed when the command was first received, so a
    restart keeps the original ``Q`` (§4.5). ``position`` orders a target's FIFO (lower first).
    """

    command_id: str
    name: str
    target_key: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    secret_names: tuple[str, ...] = ()
    idempotency_key: str | None = None
    issued_at: int = 0
    expires_at: int | None = None
    timeout_ms: int | None = None
    state: CommandState = CommandState.QUEUED
    attempt: int = 0
    result: Any = None
    error: CommandError | None = None
    ack_sent: bool = False
    deadline: int = 0
    position: int = 0
    received_at: int = 0
    updated_at: int = 0
    terminal_at: int | None = None

    @property
    def terminal(self) -> bool:
        """Return whether the command has reached its final state."""
        return self.state.terminal

    def evolve(self, **changes: Any) -> Command:
        """Return a copy with ``changes`` applied.

        Field by field rather than ``dataclasses.replace``, which runs ``__init__`` and costs
        about three times as much; a command is evolved at every state change (hot path).
        """
        unknown = changes.keys() - _COMMAND_FIELDS
        if unknown:
            raise TypeError(f"Command has no field {sorted(unknown)[0]!r}")
        copy = object.__new__(Command)
        for name in _COMMAND_FIELDS:
            _set_field(copy, name, changes[name] if name in changes else getattr(self, name))
        return copy

    def to_json(self) -> dict[str, Any]:
        """Return the persisted (camelCase) form; it holds no secret value."""
        return {
            "commandId": self.command_id,
            "name": self.name,
            "targetKey": self.target_key,
            "params": self.params,
            "secretNames": list(self.secret_names),
            "idempotencyKey": self.idempotency_key,
            "issuedAt": self.issued_at,
            "expiresAt": self.expires_at,
            "timeoutMs": self.timeout_ms,
            "state": self.state.value,
            "attempt": self.attempt,
            "result": self.result,
            "error": None if self.error is None else self.error.to_json(),
            "ackSent": self.ack_sent,
            "deadline": self.deadline,
            "position": self.position,
            "receivedAt": self.received_at,
            "updatedAt": self.updated_at,
            "terminalAt": self.terminal_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Command:
        """Build from the persisted form."""
        error = data.get("error")
        return cls(
            command_id=data["commandId"],
            name=data["name"],
            target_key=data["targetKey"],
            params=dict(data.get("params") or {}),
            secret_names=tuple(data.get("secretNames") or ()),
            idempotency_key=data.get("idempotencyKey"),
            issued_at=int(data["issuedAt"]),
            expires_at=data.get("expiresAt"),
            timeout_ms=data.get("timeoutMs"),
            state=CommandState(data["state"]),
            attempt=int(data.get("attempt", 0)),
            result=data.get("result"),
            error=None if error is None else CommandError.from_json(error),
            ack_sent=bool(data.get("ackSent", False)),
            deadline=int(data.get("deadline", 0)),
            position=int(data.get("position", 0)),
            received_at=int(data.get("receivedAt", 0)),
            updated_at=int(data.get("updatedAt", 0)),
            terminal_at=data.get("terminalAt"),
        )


_COMMAND_FIELDS: Final = tuple(f.name for f in dataclasses.fields(Command))
# Frozen dataclasses are built with object.__setattr__ too.
_set_field: Final = object.__setattr__


def ack_payload(command: Command, at: int, queue_position: int | None = None) -> dict[str, Any]:
    """Return the COMMAND_ACK payload for the record's current state (§3.5).

    Args:
        command: the committed record.
        at: daemon time of the transition, epoch milliseconds (sent as RFC 3339).
        queue_position: for a ``queued`` record, the commands ahead of it.
    """
    payload: dict[str, Any] = {
        "commandId": command.command_id,
        "state": command.state.ack_state,
        "attempt": command.attempt,
        "at": format_time_ms(at),
    }
    if command.state is CommandState.QUEUED and queue_position is not None:
        payload["queuePosition"] = queue_position
    if command.state is CommandState.SUCCEEDED:
        payload["result"] = command.result
    elif command.error is not None:
        payload["error"] = command.error.to_json()
    return payload


def parse_target(target: object) -> str:
    """Return the target key (``capability:c``, ``integration:i``, ``plugin:n``) of a target.

    Raises:
        InvalidCommand: ``target`` is not an object with exactly one known non-empty key.
    """
    if not isinstance(target, Mapping) or len(target) != 1:
        raise InvalidCommand([{"path": "target", "message": "must have exactly one key"}])
    ((field, value),) = target.items()
    prefix = _TARGET_PREFIXES.get(field)
    if prefix is None:
        raise InvalidCommand([{"path": "target", "message": f"unknown target key {field!r}"}])
    if not isinstance(value, str) or not value:
        raise InvalidCommand([{"path": f"target.{field}", "message": "must be a non-empty string"}])
    return f"{prefix}:{value}"


def parse_time_ms(value: object) -> int:
    """Return epoch milliseconds from an integer or an RFC 3339 string.

    Raises:
        ValueError: neither form.
    """
    if isinstance(value, bool):
        raise ValueError("not a time")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            raise ValueError("time without a UTC offset")
        return int(parsed.timestamp() * 1000)
    raise ValueError("not a time")


def _optional_int(data: Mapping[str, Any], key: str, errors: list[dict[str, str]]) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        errors.append({"path": key, "message": "must be a non-negative integer"})
        return None
    return value


def _optional_time(data: Mapping[str, Any], key: str, errors: list[dict[str, str]]) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return parse_time_ms(value)
    except ValueError:
        errors.append({"path": key, "message": "must be an RFC 3339 time or epoch milliseconds"})
        return None


def parse_command(frame: Mapping[str, Any], now: int) -> tuple[Command, dict[str, str]]:
    """Split a COMMAND payload into its record and its secret values.

    Returns:
        The ``queued`` record (``deadline`` still 0; ``CommandBook.submit`` sets it) and the
        ``secrets`` mapping, which must never be stored.

    Raises:
        InvalidCommand: the payload fails validation (§4.2 step 2).
    """
    errors: list[dict[str, str]] = []
    command_id = frame.get("commandId")
    if not isinstance(command_id, str) or not command_id:
        raise InvalidCommand([{"path": "commandId", "message": "must be a non-empty string"}])
    name = frame.get("name")
    if not isinstance(name, str) or not name:
        errors.append({"path": "name", "message": "must be a non-empty string"})
    target_key = ""
    try:
        target_key = parse_target(frame.get("target"))
    except InvalidCommand as exc:
        errors.extend(exc.errors)
    params = frame.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        errors.append({"path": "params", "message": "must be an object"})
        params = {}
    secrets = frame.get("secrets") or {}
    if not isinstance(secrets, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in secrets.items()
    ):
        # Never echo the offending values: they are secrets.
        errors.append({"path": "secrets", "message": "must map names to string values"})
        secrets = {}
    idempotency_key = frame.get("idempotencyKey")
    if idempotency_key is not None and not isinstance(idempotency_key, str):
        errors.append({"path": "idempotencyKey", "message": "must be a string"})
        idempotency_key = None
    issued_at = _optional_time(frame, "issuedAt", errors)
    if issued_at is None and not any(error["path"] == "issuedAt" for error in errors):
        errors.append({"path": "issuedAt", "message": "is required (an RFC 3339 time)"})
    expires_at = _optional_time(frame, "expiresAt", errors)
    timeout_ms = _optional_int(frame, "timeoutMs", errors)
    if errors:
        raise InvalidCommand(errors, command_id)
    assert isinstance(name, str) and issued_at is not None
    command = Command(
        command_id=command_id,
        name=name,
        target_key=target_key,
        params=dict(params),
        secret_names=tuple(sorted(secrets)),
        idempotency_key=idempotency_key,
        issued_at=issued_at,
        expires_at=expires_at,
        timeout_ms=timeout_ms,
        received_at=now,
        updated_at=now,
    )
    return command, dict(secrets)
