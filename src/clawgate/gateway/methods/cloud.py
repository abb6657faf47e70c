"""The control link as operators see it (`cloud.status`; a clawgate extension)."""

from __future__ import annotations

from typing import Any

from ...protocol.scopes import READ
from ..context import CallContext
from ..registry import method
from ._common import EmptyParams, OpenResult

__all__ = ["CloudStatus", "cloud_status"]


class CloudStatus(OpenResult):
    """The link's state (control-plane spec §3.8); also the `cloud.status` event payload."""

    state: str
    connected: bool
    since: str | None = None
    lastError: str | None = None
    #: The id this daemon registers with (`clawgate hub daemon ID` on the hub).
    daemonId: str | None = None


@method("cloud.status", params=EmptyParams, result=CloudStatus, scope=READ)
def cloud_status(ctx: CallContext, params: EmptyParams) -> dict[str, Any]:
    """Show the control link's state, since when, and its last error."""
    side = ctx.services.plugins
    if side is None or side.cloud is None:
        return {"state": "disabled", "connected": False, "since": None, "lastError": None}
    return side.cloud.status()
