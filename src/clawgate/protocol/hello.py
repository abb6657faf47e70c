"""Builders for hello-ok, its snapshot and policy, and the shutdown and presence payloads.

Pure: the server hands in what it knows and gets the wire shape back (spec §3.4, §8).
Every difference between protocol 3 and 4 in these shapes is decided here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .limits import Limits

__all__ = [
    "DEFAULT_AGENT_ID",
    "MAIN_KEY",
    "HelloAuth",
    "hello_ok",
    "policy",
    "presence_payload",
    "session_defaults",
    "shutdown_payload",
    "snapshot",
]

DEFAULT_AGENT_ID: Final = "main"
MAIN_KEY: Final = "main"


@dataclass(frozen=True, slots=True)
class HelloAuth:
    """What the connection was granted, and the device token issued with it, if any."""

    role: str
    scopes: Sequence[str]
    device_token: str | None = field(default=None, repr=False)
    issued_at_ms: int | None = None


def policy(limits: Limits) -> dict[str, int]:
    """Return `hello-ok.policy`: the limits a client must respect (spec §11)."""
    return {
        "maxPayload": limits.max_payload,
        "maxBufferedBytes": limits.max_buffered_bytes,
        "tickIntervalMs": limits.tick_interval_ms,
    }


def session_defaults() -> dict[str, str]:
    """Return the snapshot's `sessionDefaults`: the main agent's main session."""
    return {
        "defaultAgentId": DEFAULT_AGENT_ID,
        "mainKey": MAIN_KEY,
        "mainSessionKey": f"agent:{DEFAULT_AGENT_ID}:{MAIN_KEY}",
        "scope": "per-sender",
    }


def snapshot(
    *,
    presence: list[dict[str, Any]],
    health: dict[str, Any],
    state_version: dict[str, int],
    uptime_ms: int,
    auth_mode: str,
    config_path: str | None = None,
    state_dir: str | None = None,
) -> dict[str, Any]:
    """Return `hello-ok.snapshot`; the paths are given to admin operators only."""
    shape: dict[str, Any] = {
        "presence": presence,
        "health": health,
        "stateVersion": state_version,
        "uptimeMs": uptime_ms,
        "sessionDefaults": session_defaults(),
        "authMode": auth_mode,
    }
    if config_path is not None:
        shape["configPath"] = config_path
    if state_dir is not None:
        shape["stateDir"] = state_dir
    return shape


def hello_ok(
    *,
    protocol: int,
    version: str,
    conn_id: str,
    boot_id: str,
    methods: list[str],
    events: list[str],
    snapshot: dict[str, Any],
    policy: dict[str, int],
    auth: HelloAuth,
    canvas_host_url: str | None = None,
) -> dict[str, Any]:
    """Return the `hello-ok` payload for the negotiated `protocol` (spec §3.4).

    `canvas_host_url` is sent on protocol 3 only: protocol 4 does not allow the field.
    """
    if protocol == 3:
        hello: dict[str, Any] = {
            "type": "hello-ok",
            "protocol": 3,
            "server": {"version": version, "connId": conn_id},
            "features": {"methods": methods, "events": events},
            "snapshot": snapshot,
            "policy": policy,
        }
        if canvas_host_url is not None:
            hello["canvasHostUrl"] = canvas_host_url
        if auth.device_token is not None:
            # Protocol 3 sends an auth block only with a device token, token first.
            hello["auth"] = {
                "deviceToken": auth.device_token,
                "role": auth.role,
                "scopes": list(auth.scopes),
                "issuedAtMs": auth.issued_at_ms,
            }
        return hello
    granted: dict[str, Any] = {"role": auth.role, "scopes": list(auth.scopes)}
    if auth.device_token is not None:
        granted["deviceToken"] = auth.device_token
        granted["issuedAtMs"] = auth.issued_at_ms
    return {
        "type": "hello-ok",
        "protocol": 4,
        "server": {"version": version, "connId": conn_id, "bootId": boot_id},
        "features": {"methods": methods, "events": events, "capabilities": []},
        "snapshot": snapshot,
        "auth": granted,
        "policy": policy,
    }


def shutdown_payload(protocol: int, reason: str, restart_expected_ms: int | None) -> dict[str, Any]:
    """Return the `shutdown` payload: protocol 4 always carries `restartExpectedMs`."""
    if protocol == 3 and restart_expected_ms is None:
        return {"reason": reason}
    return {"reason": reason, "restartExpectedMs": restart_expected_ms}


def presence_payload(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the `presence` event payload: the whole list (spec §8.3)."""
    return {"presence": entries}
