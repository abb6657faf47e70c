"""What plugins may ask the daemon about integrations over IPC (spec §2.5)."""

from __future__ import annotations

from typing import Any

from ..ipc import Handler, IpcError, PluginSession
from ..protocol.ipc.frames import INVALID_PARAMS
from .reconciler import Reconciler

__all__ = ["integration_handlers"]


def integration_handlers(reconciler: Reconciler) -> dict[str, Handler]:
    """Return the `integration.list` and `integration.report` handlers over `reconciler`."""

    async def integration_list(session: PluginSession, params: dict[str, Any]) -> dict[str, Any]:
        owned_only = params.get("ownedOnly", False)
        if not isinstance(owned_only, bool):
            raise IpcError(INVALID_PARAMS, "ownedOnly must be true or false")
        view = reconciler.ledger_view(session.name if owned_only else None)
        for row in view["integrations"]:
            if "error" in row:
                row["lastError"] = row.pop("error")  # the §2.5 name (reports say `error`)
        return view

    async def integration_report(session: PluginSession, params: dict[str, Any]) -> dict[str, Any]:
        return await reconciler.plugin_report(session, params)

    return {"integration.list": integration_list, "integration.report": integration_report}
