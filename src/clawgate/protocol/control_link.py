"""Control-link protocol version 1: envelope, payload models, versions, close codes (spec §3).

Pure and shared by the hub and the daemon: building and parsing messages never touches a
socket. Payload models use the wire's camelCase names. Unknown fields are dropped when parsing,
because the spec (§0) makes every receiver ignore them; every field the spec lists is typed.

Exception tree::

    InvalidMessage      an envelope or payload broke the spec; ``errors`` lists every problem
                        as ``{path, message}`` with a dotted path (``integrations[0].id``)

Invariants: a message never carries an API key; ``parse_*`` never echo a field's value in an
error message, because payloads may hold secrets.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, TypedDict

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from .nesting import nesting_error, nesting_exceeds
from .timefmt import format_time, parse_time

__all__ = [
    "CAPABILITY_PATTERN",
    "CLOSE_GOING_AWAY",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_PROTOCOL_VIOLATION",
    "CLOSE_SERVICE_RESTART",
    "CLOSE_SESSION_REPLACED",
    "CLOSE_UNAUTHORIZED",
    "CLOSE_UPGRADE_REQUIRED",
    "COMMAND_NAME_PATTERN",
    "DEAD_LINK_FACTOR",
    "DEFAULT_HEARTBEAT_MS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "MAX_PROTOCOL_VERSION",
    "MIN_PROTOCOL_VERSION",
    "PROTOCOL_VERSION",
    "REGISTER_TIMEOUT_MS",
    "TERMINAL_STATES",
    "Clock",
    "Command",
    "CommandAck",
    "CommandState",
    "CommandTarget",
    "DesiredIntegration",
    "DesiredState",
    "Envelope",
    "ErrorInfo",
    "IntegrationStatus",
    "InvalidMessage",
    "MessageIssue",
    "MessageType",
    "Ping",
    "PluginInfo",
    "Pong",
    "ReconciliationReport",
    "ReportIntegration",
    "ReportPlugin",
    "ReportTrigger",
    "ServiceAck",
    "ServiceRegister",
    "dead_after_ms",
    "dump_payload",
    "envelope",
    "negotiate_version",
    "parse_envelope",
    "parse_payload",
]

#: The control-link protocol versions this code speaks (spec §3): 1..1.
MIN_PROTOCOL_VERSION: Final = 1
MAX_PROTOCOL_VERSION: Final = 1
PROTOCOL_VERSION: Final = MAX_PROTOCOL_VERSION

#: Close codes of spec §3.2.
CLOSE_PROTOCOL_VIOLATION: Final = 4400
CLOSE_UNAUTHORIZED: Final = 4401
CLOSE_SESSION_REPLACED: Final = 4409
CLOSE_UPGRADE_REQUIRED: Final = 4426
CLOSE_SERVICE_RESTART: Final = 1012
CLOSE_GOING_AWAY: Final = 1001
CLOSE_MESSAGE_TOO_BIG: Final = 1009

#: PING interval unless the hub says otherwise in SERVICE_ACK (spec §3.6).
DEFAULT_HEARTBEAT_MS: Final = 20_000
#: A link with no inbound message for this many heartbeat intervals is dead (spec §3.6).
DEAD_LINK_FACTOR: Final = 2.5
#: Largest text frame either side accepts unless SERVICE_ACK says otherwise (spec §3.1).
DEFAULT_MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024
#: SERVICE_REGISTER must arrive, and SERVICE_ACK must answer it, within this (spec §3.4).
REGISTER_TIMEOUT_MS: Final = 10_000

#: Command names follow the manifest's syntax (spec §6); capabilities the IPC syntax (§2.3).
COMMAND_NAME_PATTERN: Final = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
CAPABILITY_PATTERN: Final = r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$"

#: Returns the current time as seconds since the epoch; injected so tests control ``ts``.
Clock = Callable[[], float]

_MAX_ID_LEN: Final = 256


class MessageType(StrEnum):
    """The message types of spec §3.5."""

    SERVICE_REGISTER = "SERVICE_REGISTER"
    SERVICE_ACK = "SERVICE_ACK"
    COMMAND = "COMMAND"
    COMMAND_ACK = "COMMAND_ACK"
    DESIRED_STATE = "DESIRED_STATE"
    RECONCILIATION_REPORT = "RECONCILIATION_REPORT"
    PING = "PING"
    PONG = "PONG"


class CommandState(StrEnum):
    """A command's state in COMMAND_ACK (spec §3.5)."""

    QUEUED = "queued"
    ACCEPTED = "accepted"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"


#: States after which a command never changes again (spec §4.1).
TERMINAL_STATES: Final = frozenset(
    {CommandState.DONE, CommandState.FAILED, CommandState.EXPIRED, CommandState.REJECTED}
)
_NEEDS_ERROR: Final = frozenset({CommandState.FAILED, CommandState.EXPIRED, CommandState.REJECTED})


class ReportTrigger(StrEnum):
    """Why a reconciliation pass ran (spec §3.5)."""

    DESIRED_STATE = "desired_state"
    RETRY = "retry"
    DRIFT = "drift"
    PLUGINS = "plugins"
    STARTUP = "startup"
    RESEND = "resend"


class IntegrationStatus(StrEnum):
    """An integration's status in a report (spec §3.5)."""

    INSTALLED = "installed"
    ACTIVE = "active"
    INACTIVE = "inactive"
    ERROR = "error"
    REMOVED = "removed"
    PENDING = "pending"


class MessageIssue(TypedDict):
    """One broken rule in a message: where (dotted path) and what."""

    path: str
    message: str


class InvalidMessage(ValueError):
    """An envelope or payload broke the spec; ``errors`` lists every problem."""

    def __init__(self, errors: list[MessageIssue]) -> None:
        self.errors = errors
        first = errors[0] if errors else MessageIssue(path="", message="invalid message")
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first['path'] or 'message'}: {first['message']}{more}")


def _check_time(text: str) -> str:
    parse_time(text)
    return text


WireTime = Annotated[str, AfterValidator(_check_time)]
WireId = Annotated[str, StringConstraints(min_length=1, max_length=_MAX_ID_LEN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=_MAX_ID_LEN)]
NonNegative = Annotated[int, Field(ge=0, strict=True)]
Positive = Annotated[int, Field(gt=0, strict=True)]
Version = Annotated[int, Field(ge=1, strict=True)]
CommandName = Annotated[str, StringConstraints(pattern=COMMAND_NAME_PATTERN, max_length=200)]
Capability = Annotated[str, StringConstraints(pattern=CAPABILITY_PATTERN, max_length=200)]


class _Payload(BaseModel):
    # extra="ignore": receivers MUST ignore unknown fields (spec §0).
    model_config = ConfigDict(extra="ignore", frozen=True)


class Envelope(_Payload):
    """The outer object of every message (spec §3.3); ``type`` may be one this code lacks."""

    type: Name
    id: WireId
    ts: WireTime
    payload: dict[str, Any]
    replyTo: WireId | None = None

    @property
    def known_type(self) -> MessageType | None:
        """Return the message type, or None for a type this version does not know."""
        try:
            return MessageType(self.type)
        except ValueError:
            return None


class PluginInfo(_Payload):
    """A plugin registered with the daemon, as SERVICE_REGISTER describes it."""

    name: Name
    version: str
    protocolVersion: Version
    capabilities: list[Capability]
    connectedAt: WireTime


class ServiceRegister(_Payload):
    """SERVICE_REGISTER: the daemon identifies itself and offers protocol versions."""

    daemonId: WireId
    daemonVersion: str
    protocolVersion: Version
    minProtocolVersion: Version | None = None
    hostname: str
    platform: Literal["linux", "darwin"]
    arch: str
    plugins: list[PluginInfo]
    lastAppliedRevision: NonNegative
    queueDepth: NonNegative


class ServiceAck(_Payload):
    """SERVICE_ACK: the hub accepts the session and sets the heartbeat."""

    sessionId: WireId
    protocolVersion: Version
    heartbeatIntervalMs: Positive = DEFAULT_HEARTBEAT_MS
    serverTime: WireTime
    hubVersion: str
    maxMessageBytes: Positive | None = None


class CommandTarget(_Payload):
    """Where a command goes: exactly one of capability, integrationId or plugin."""

    capability: Capability | None = None
    integrationId: Name | None = None
    plugin: Name | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CommandTarget:
        given = [v for v in (self.capability, self.integrationId, self.plugin) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of capability, integrationId or plugin")
        return self


class ErrorInfo(_Payload):
    """An error carried by an ack or a report entry."""

    code: Name
    message: str
    details: Any = None


class Command(_Payload):
    """COMMAND: run a named command on a target."""

    commandId: WireId
    name: CommandName
    target: CommandTarget
    params: dict[str, Any]
    secrets: dict[str, str] | None = Field(default=None, repr=False)
    idempotencyKey: WireId | None = None
    issuedAt: WireTime
    expiresAt: WireTime | None = None
    timeoutMs: Positive | None = None


class CommandAck(_Payload):
    """COMMAND_ACK: progress or outcome of a command."""

    commandId: WireId
    state: CommandState
    attempt: NonNegative
    at: WireTime
    queuePosition: NonNegative | None = None
    result: Any = None
    error: ErrorInfo | None = None

    @model_validator(mode="after")
    def _carries_error(self) -> CommandAck:
        if self.state in _NEEDS_ERROR and self.error is None:
            raise ValueError(f"an ack in state {self.state.value!r} must carry error")
        return self

    @property
    def terminal(self) -> bool:
        """Return True when the state is terminal."""
        return self.state in TERMINAL_STATES


class DesiredIntegration(_Payload):
    """One entry of DESIRED_STATE."""

    id: Name
    version: str
    enabled: bool
    manifest: dict[str, Any]
    config: dict[str, Any]
    secrets: dict[str, str] | None = None
    plugin: Name | None = None


class DesiredState(_Payload):
    """DESIRED_STATE: the full desired integration set at a revision."""

    revision: NonNegative
    issuedAt: WireTime
    integrations: list[DesiredIntegration]


class ReportIntegration(_Payload):
    """One integration's actual state in a report."""

    id: Name
    status: IntegrationStatus
    version: str | None = None
    desiredVersion: str | None = None
    enabled: bool
    owner: str | None = None
    lastAction: str | None = None
    error: ErrorInfo | None = None
    attempts: NonNegative
    nextAttemptAt: WireTime | None = None
    updatedAt: WireTime


class ReportPlugin(_Payload):
    """A plugin as a report lists it."""

    name: Name
    version: str
    connected: bool


class ReconciliationReport(_Payload):
    """RECONCILIATION_REPORT: the actual state after a reconciliation pass."""

    revision: NonNegative
    trigger: ReportTrigger
    startedAt: WireTime
    finishedAt: WireTime
    drift: bool
    converged: bool
    superseded: bool
    integrations: list[ReportIntegration]
    plugins: list[ReportPlugin]


class Ping(_Payload):
    """PING: liveness probe."""

    nonce: Name


class Pong(_Payload):
    """PONG: the answer to a PING, with its nonce."""

    nonce: Name


_PAYLOADS: Final[Mapping[MessageType, type[_Payload]]] = {
    MessageType.SERVICE_REGISTER: ServiceRegister,
    MessageType.SERVICE_ACK: ServiceAck,
    MessageType.COMMAND: Command,
    MessageType.COMMAND_ACK: CommandAck,
    MessageType.DESIRED_STATE: DesiredState,
    MessageType.RECONCILIATION_REPORT: ReconciliationReport,
    MessageType.PING: Ping,
    MessageType.PONG: Pong,
}


def _dotted(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _issues(exc: ValidationError) -> list[MessageIssue]:
    out: list[MessageIssue] = []
    # include_input=False: a payload may hold secrets, which must never reach a message.
    for error in exc.errors(include_url=False, include_context=False, include_input=False):
        location = tuple(part for part in error["loc"] if part != "function-after")
        kind = error["type"]
        if kind == "missing":
            message = "is required"
        elif kind == "value_error":
            message = error["msg"].removeprefix("Value error, ")
        else:
            message = error["msg"][0].lower() + error["msg"][1:]
        out.append(MessageIssue(path=_dotted(location), message=message))
    return out


def parse_envelope(obj: object) -> Envelope:
    """Check the outer shape of a decoded message.

    Raises:
        InvalidMessage: ``obj`` is not an envelope of spec §3.3.
    """
    if not isinstance(obj, dict):
        raise InvalidMessage([MessageIssue(path="", message="a message must be a JSON object")])
    if nesting_exceeds(obj):  # before pydantic, the store's re-encoding or a plugin sees it
        raise InvalidMessage([MessageIssue(path="", message=nesting_error())])
    try:
        return Envelope.model_validate(obj)
    except ValidationError as exc:
        raise InvalidMessage(_issues(exc)) from None


def parse_payload(type_: MessageType, payload: object) -> Any:
    """Validate ``payload`` as the payload of a ``type_`` message and return its model.

    Raises:
        InvalidMessage: listing every rule the payload breaks.
    """
    model = _PAYLOADS[type_]
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidMessage(_issues(exc)) from None


def dump_payload(payload: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """Return a payload as wire JSON; unset optional fields are left out."""
    if isinstance(payload, BaseModel):
        return payload.model_dump(mode="json", exclude_none=True)
    return dict(payload)


def envelope(
    type_: MessageType,
    payload: BaseModel | Mapping[str, Any],
    *,
    reply_to: str | None = None,
    clock: Clock = time.time,
) -> dict[str, Any]:
    """Build a message with a fresh id and ``ts`` from ``clock``, ready to encode as JSON."""
    message: dict[str, Any] = {
        "type": type_.value,
        "id": str(uuid.uuid4()),
        "ts": format_time(clock()),
        "payload": dump_payload(payload),
    }
    if reply_to is not None:
        message["replyTo"] = reply_to
    return message


def negotiate_version(
    offered: int,
    offered_min: int | None = None,
    *,
    ours: tuple[int, int] = (MIN_PROTOCOL_VERSION, MAX_PROTOCOL_VERSION),
) -> int | None:
    """Return the highest version both sides speak, or None (close with 4426).

    Args:
        offered: The peer's highest version (``protocolVersion``).
        offered_min: The peer's lowest version (``minProtocolVersion``); defaults to ``offered``.
        ours: Our lowest and highest version.
    """
    low = max(ours[0], offered if offered_min is None else offered_min)
    high = min(ours[1], offered)
    return high if high >= low else None


def dead_after_ms(heartbeat_ms: int) -> int:
    """Return after how many ms without an inbound message a link is dead (spec §3.6)."""
    return int(heartbeat_ms * DEAD_LINK_FACTOR)
