"""Commands that target an integration, checked against the desired state (spec §2.9, §6)."""

from __future__ import annotations

from typing import Any

from ..commands import CommandError
from ..protocol.ipc.frames import INVALID_PARAMS
from .desired import schema_issues
from .errors import RouteRejected
from .reconciler import Reconciler

__all__ = ["IntegrationCommands"]


class IntegrationCommands:
    """Answer the command router's questions about integration targets from the reconciler."""

    def __init__(self, reconciler: Reconciler) -> None:
        self._reconciler = reconciler

    def owner(self, integration_id: str) -> str | None:
        """Return the live plugin that owns an active integration, else None."""
        return self._reconciler.integration_owner(integration_id)

    def admit(self, integration_id: str, name: str, params: dict[str, Any]) -> CommandError | None:
        """Return what the integration's manifest refuses about this command, or None."""
        try:
            spec = self._reconciler.check_command(integration_id, name)
        except RouteRejected as exc:
            return exc.error
        if spec.params_schema is None:
            return None
        issues = schema_issues(spec.params_schema, params, "params", ())
        if not issues:
            return None
        message = f"params of {name} do not match its schema: {issues[0]['message']}"
        return CommandError(INVALID_PARAMS, message, False, {"errors": issues})

    def timeout_ms(self, integration_id: str, name: str) -> int | None:
        """Return the manifest's timeout for the command, if it is still desired."""
        try:
            return self._reconciler.check_command(integration_id, name).timeout_ms
        except RouteRejected:
            return None
