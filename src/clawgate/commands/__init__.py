"""Hub commands: the record, the offline queue's rules and their persistence (spec §4).

``parse_command`` splits a COMMAND into a ``Command`` record and its secret values;
``CommandBook`` is the pure queue (dedupe, FIFO per target key, caps, TTL, disconnect
re-queue, recovery); ``CommandService`` commits each of its changes to state.db before the
caller acks it.
"""

from .model import (
    Command,
    CommandError,
    CommandState,
    InvalidCommand,
    ack_payload,
    parse_command,
    parse_target,
)
from .queue import CommandBook, Decision, Outcome, UnknownCommand, execution_timeout_ms
from .service import CommandService, CommitListener

__all__ = [
    "Command",
    "CommandBook",
    "CommandError",
    "CommandService",
    "CommandState",
    "CommitListener",
    "Decision",
    "InvalidCommand",
    "Outcome",
    "UnknownCommand",
    "ack_payload",
    "execution_timeout_ms",
    "parse_command",
    "parse_target",
]
