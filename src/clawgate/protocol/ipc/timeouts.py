"""The §2.8 request timeouts, one table for both ends of the plugin socket (no I/O).

The requester applies them and fails its own request with `TIMEOUT` when one expires: the
daemon to what it asks plugins, the plugin SDK to what it asks the daemon.
`command.execute` has no row on purpose: its caller computes `timeoutMs` (§4.2).
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_REQUEST_TIMEOUT_S", "DEFAULT_TIMEOUTS_S"]

#: Seconds for any method without a row (the daemon's `ipc.request_timeout_s` default).
DEFAULT_REQUEST_TIMEOUT_S: Final = 30.0

#: Seconds per method; the daemon lets `[ipc.method_timeouts_s]` override any row.
DEFAULT_TIMEOUTS_S: Final[dict[str, float]] = {
    "register": 10.0,
    "ping": 10.0,
    "integration.install": 300.0,
    "integration.remove": 120.0,
    "integration.configure": 60.0,
    "integration.activate": 60.0,
    "integration.deactivate": 60.0,
    "integration.health": 15.0,
    "integration.list": 15.0,
}
