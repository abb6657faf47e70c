"""Errors of the reconciliation engine; codes are the shared ones of spec §2.11."""

from __future__ import annotations

from ..commands.model import CommandError
from ..protocol.ipc.frames import (
    DEPENDENCY_CYCLE,
    DEPENDENCY_MISSING,
    DEPENDENCY_NOT_READY,
    INTERNAL,
    INVALID_CONFIG,
    INVALID_MANIFEST,
    PLUGIN_DISCONNECTED,
    PLUGIN_OFFLINE,
    SECRETS_UNAVAILABLE,
    UNHEALTHY,
)

__all__ = [
    "DEPENDENCY_CYCLE",
    "DEPENDENCY_MISSING",
    "DEPENDENCY_NOT_READY",
    "INTERNAL",
    "INVALID_CONFIG",
    "INVALID_MANIFEST",
    "PLUGIN_DISCONNECTED",
    "PLUGIN_OFFLINE",
    "SECRETS_UNAVAILABLE",
    "UNHEALTHY",
    "DesiredStateError",
    "ReconcileError",
    "RouteRejected",
]

# Report entries, IPC failures and COMMAND_ACK errors share one shape (§2.11), so a
# reconciliation error is the same value type as a command's.
ReconcileError = CommandError


class DesiredStateError(ValueError):
    """A desired-state snapshot that cannot be used at all (the message says why)."""


class RouteRejected(Exception):
    """A command target the desired state refuses (spec §2.9); ``error`` is what to ack."""

    def __init__(self, error: ReconcileError) -> None:
        super().__init__(error.message)
        self.error = error
