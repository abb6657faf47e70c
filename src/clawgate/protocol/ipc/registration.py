"""The `register` rules and protocol version negotiation, without I/O (spec §2.3, §2.4).

The plugin SDK builds its params with `register_params` and checks them with
`parse_register` before it connects; the daemon checks what arrives with the same function,
so a plugin the SDK accepts is one the daemon accepts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from .frames import INVALID_PARAMS, UNSUPPORTED_PROTOCOL, IpcError

__all__ = [
    "MAX_CAPABILITIES",
    "PROTOCOL_MAX",
    "PROTOCOL_MIN",
    "RegisterParams",
    "negotiate_protocol",
    "parse_register",
    "register_params",
    "register_result",
]

PROTOCOL_MIN: Final = 1
PROTOCOL_MAX: Final = 1
MAX_CAPABILITIES: Final = 64

_NAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_CAPABILITY: Final = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*")


@dataclass(frozen=True, slots=True)
class RegisterParams:
    """Validated `register` params."""

    name: str
    version: str
    protocol_version: int
    min_protocol_version: int
    capabilities: tuple[str, ...]
    pid: int | None = None
    runtime: Any = None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def parse_register(params: dict[str, Any]) -> RegisterParams:
    """Validate `register` params, collecting every problem.

    Raises:
        IpcError: `INVALID_PARAMS` with `details.errors` as a list of `{path, message}`.
    """
    errors: list[dict[str, str]] = []

    def fail(path: str, message: str) -> None:
        errors.append({"path": path, "message": message})

    name = params.get("name")
    if not isinstance(name, str):
        fail("/name", "must be a string")
    elif not _NAME.fullmatch(name):
        fail("/name", "must match ^[a-z0-9][a-z0-9._-]{0,63}$")
    version = params.get("version")
    if not isinstance(version, str) or not version:
        fail("/version", "must be a non-empty string")
    protocol = _positive_int(params.get("protocolVersion"))
    if protocol is None:
        fail("/protocolVersion", "must be a positive integer")
    minimum = _positive_int(params.get("minProtocolVersion", protocol))
    if minimum is None:
        if protocol is not None:
            fail("/minProtocolVersion", "must be a positive integer")
    elif protocol is not None and minimum > protocol:
        fail("/minProtocolVersion", "must not exceed protocolVersion")
    capabilities = params.get("capabilities")
    if not isinstance(capabilities, list):
        fail("/capabilities", "must be an array")
        capabilities = []
    elif len(capabilities) > MAX_CAPABILITIES:
        fail("/capabilities", f"must hold at most {MAX_CAPABILITIES} entries")
    seen: set[str] = set()
    for index, capability in enumerate(capabilities):
        if not isinstance(capability, str) or not _CAPABILITY.fullmatch(capability):
            fail(f"/capabilities/{index}", "must be a dotted lowercase capability name")
        elif capability in seen:
            fail(f"/capabilities/{index}", "duplicate capability")
        else:
            seen.add(capability)
    pid = params.get("pid")
    if pid is not None and (not _is_int(pid) or pid < 0):
        fail("/pid", "must be a non-negative integer")
    if errors:
        raise IpcError(INVALID_PARAMS, "invalid register params", {"errors": errors})
    # Every None and non-string was reported above; these only narrow the types.
    assert isinstance(name, str) and isinstance(version, str)
    assert protocol is not None and minimum is not None
    return RegisterParams(
        name=name,
        version=version,
        protocol_version=protocol,
        min_protocol_version=minimum,
        capabilities=tuple(capabilities),
        pid=pid,
        runtime=params.get("runtime"),
    )


def negotiate_protocol(
    peer_max: int, peer_min: int, *, ours_min: int = PROTOCOL_MIN, ours_max: int = PROTOCOL_MAX
) -> int:
    """Return the negotiated version: the smaller maximum, unless below the larger minimum.

    Raises:
        IpcError: `UNSUPPORTED_PROTOCOL` with `details.supported` when there is no overlap.
    """
    version = min(peer_max, ours_max)
    if version < max(peer_min, ours_min):
        raise IpcError(
            UNSUPPORTED_PROTOCOL,
            f"no common protocol version: plugin speaks {peer_min}..{peer_max}, "
            f"daemon speaks {ours_min}..{ours_max}",
            {"supported": {"min": ours_min, "max": ours_max}},
        )
    return version


def register_params(
    *,
    name: str,
    version: str,
    capabilities: list[str],
    pid: int | None = None,
    runtime: Any = None,
    protocol_version: int = PROTOCOL_MAX,
    min_protocol_version: int = PROTOCOL_MIN,
) -> dict[str, Any]:
    """Return the `register` params a plugin sends, speaking this module's versions by default.

    Optional fields that are None are left out.
    """
    params: dict[str, Any] = {
        "name": name,
        "version": version,
        "protocolVersion": protocol_version,
        "minProtocolVersion": min_protocol_version,
        "capabilities": capabilities,
    }
    if pid is not None:
        params["pid"] = pid
    if runtime is not None:
        params["runtime"] = runtime
    return params


def register_result(
    *,
    daemon_version: str,
    protocol_version: int,
    daemon_id: str,
    connection_id: str,
    cloud_connected: bool,
) -> dict[str, Any]:
    """Return the `register` result payload."""
    return {
        "status": "registered",
        "daemonVersion": daemon_version,
        "protocolVersion": protocol_version,
        "daemonId": daemon_id,
        "connectionId": connection_id,
        "cloudConnected": cloud_connected,
    }
