"""Registration, SDK side: the rules checked before connecting, and ``register`` (spec §2.3).

Invariants:
- A plugin the SDK constructs is one the daemon accepts: both ends check the params with
  ``parse_register`` from the wire module.
- A refusal a retry cannot fix (``FATAL_REGISTER_CODES``) is returned as ``fatal`` and ends
  ``Plugin.run``; any other failure is retried on a new connection after the backoff.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Final

from ..protocol.ipc.frames import (
    ALREADY_REGISTERED,
    INVALID_PARAMS,
    UNSUPPORTED_PROTOCOL,
    IpcError,
)
from ..protocol.ipc.registration import PROTOCOL_MAX, parse_register, register_params
from ..protocol.ipc.timeouts import DEFAULT_TIMEOUTS_S
from ._connection import PluginConnection
from ._errors import NotConnectedError, PluginError

__all__ = [
    "FATAL_REGISTER_CODES",
    "PROTOCOL_VERSION",
    "Outcome",
    "check_registration",
    "register",
]

#: The highest protocol version the SDK speaks; it speaks every version the wire module does.
PROTOCOL_VERSION: Final = PROTOCOL_MAX
#: Registration errors that a reconnect cannot fix.
FATAL_REGISTER_CODES: Final = frozenset({UNSUPPORTED_PROTOCOL, INVALID_PARAMS, ALREADY_REGISTERED})


def check_registration(name: str, version: str, capabilities: list[str]) -> None:
    """Apply the daemon's own ``register`` rules (spec §2.3) before connecting.

    Raises:
        ValueError: Listing every rule the name, version or capabilities break.
    """
    try:
        parse_register(register_params(name=name, version=version, capabilities=capabilities))
    except IpcError as exc:
        errors = (exc.details or {}).get("errors", [])
        problems = "; ".join(f"{e['path']} {e['message']}" for e in errors)
        raise ValueError(f"invalid plugin registration: {problems or exc.message}") from None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one connection attempt ended: the ``register`` result, or a fatal refusal."""

    result: dict[str, Any] | None = None
    fatal: PluginError | None = None

    @property
    def registered(self) -> bool:
        """Return True if the daemon accepted the registration."""
        return self.result is not None


async def register(
    conn: PluginConnection,
    *,
    name: str,
    version: str,
    capabilities: list[str],
    runtime: str,
) -> Outcome:
    """Register on ``conn``; on success tag its log lines with the daemon's connection id."""
    params = register_params(
        name=name,
        version=version,
        capabilities=capabilities,
        pid=os.getpid(),
        runtime=runtime,
    )
    try:
        result = await conn.request("register", params, DEFAULT_TIMEOUTS_S["register"])
    except NotConnectedError:
        return Outcome()
    except PluginError as exc:
        if exc.code in FATAL_REGISTER_CODES:
            conn.log.error("registration refused: %s %s", exc.code, exc.message)
            return Outcome(fatal=exc)
        conn.log.warning("registration failed: %s %s", exc.code, exc.message)
        return Outcome()
    conn.name(result.get("connectionId", "-"))
    conn.log.info("registered (daemon %s)", result.get("daemonVersion"))
    return Outcome(result=result)
