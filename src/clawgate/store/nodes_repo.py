"""Persist node command surfaces and exec policies (functions run on the store's owner thread)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable
from typing import Any, Final

from ..protocol.exec_approvals import ExecMode, ExecPolicy
from ..protocol.nodes import NodeSurface, SurfaceRequest

__all__ = [
    "DEFAULT_POLICY_KEY",
    "load_exec_policies",
    "load_surfaces",
    "save_exec_policy",
    "save_surface_changes",
]

#: The `exec_policies` row of the default policy.
DEFAULT_POLICY_KEY: Final = "*"


def _surface_from_json(node_id: str, text: str) -> NodeSurface:
    data: dict[str, Any] = json.loads(text)
    return NodeSurface(
        node_id=node_id,
        commands=tuple(data.get("commands", ())),
        approved_at_ms=data.get("approved_at_ms"),
        display_name=data.get("display_name"),
    )


def _request_from_json(text: str) -> SurfaceRequest:
    data: dict[str, Any] = json.loads(text)
    return SurfaceRequest(
        **{**data, "commands": tuple(data["commands"]), "caps": tuple(data["caps"])}
    )


def _policy_from_json(text: str) -> ExecPolicy:
    data: dict[str, Any] = json.loads(text)
    return ExecPolicy(
        mode=ExecMode(data["mode"]),
        allowlist=tuple(tuple(p) for p in data.get("allowlist", ())),
        updated_at_ms=data.get("updated_at_ms"),
    )


def load_surfaces(conn: sqlite3.Connection) -> tuple[list[NodeSurface], list[SurfaceRequest]]:
    """Return the approved surfaces and the waiting requests."""
    surfaces = [
        _surface_from_json(row[0], row[1])
        for row in conn.execute("SELECT node_id, record FROM node_surfaces")
    ]
    requests = [
        _request_from_json(row[0])
        for row in conn.execute("SELECT request FROM node_surface_requests ORDER BY ts")
    ]
    return surfaces, requests


def load_exec_policies(conn: sqlite3.Connection) -> dict[str, ExecPolicy]:
    """Return the exec policies by node id (`*`: the default)."""
    return {
        row[0]: _policy_from_json(row[1])
        for row in conn.execute("SELECT node_id, record FROM exec_policies")
    }


def save_surface_changes(
    conn: sqlite3.Connection,
    *,
    surface: NodeSurface | None = None,
    request: SurfaceRequest | None = None,
    dropped: Iterable[str] = (),
    removed_node: str | None = None,
) -> None:
    """Write one surface change set in the caller's transaction."""
    if surface is not None:
        record = {
            "commands": list(surface.commands),
            "approved_at_ms": surface.approved_at_ms,
            "display_name": surface.display_name,
        }
        conn.execute(
            "INSERT INTO node_surfaces (node_id, record) VALUES (?, ?) "
            "ON CONFLICT (node_id) DO UPDATE SET record = excluded.record",
            (surface.node_id, json.dumps(record)),
        )
    if request is not None:
        conn.execute(
            "INSERT INTO node_surface_requests (request_id, node_id, request, ts) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (request_id) DO UPDATE SET "
            "request = excluded.request, ts = excluded.ts",
            (
                request.request_id,
                request.node_id,
                json.dumps(dataclasses.asdict(request)),
                request.ts,
            ),
        )
    conn.executemany(
        "DELETE FROM node_surface_requests WHERE request_id = ?", [(rid,) for rid in dropped]
    )
    if removed_node is not None:
        conn.execute("DELETE FROM node_surfaces WHERE node_id = ?", (removed_node,))
        conn.execute("DELETE FROM node_surface_requests WHERE node_id = ?", (removed_node,))
        conn.execute("DELETE FROM exec_policies WHERE node_id = ?", (removed_node,))


def save_exec_policy(conn: sqlite3.Connection, node_id: str, policy: ExecPolicy) -> None:
    """Insert or replace one node's (or the default, `*`) exec policy."""
    record = {
        "mode": policy.mode.value,
        "allowlist": [list(p) for p in policy.allowlist],
        "updated_at_ms": policy.updated_at_ms,
    }
    conn.execute(
        "INSERT INTO exec_policies (node_id, record) VALUES (?, ?) "
        "ON CONFLICT (node_id) DO UPDATE SET record = excluded.record",
        (node_id, json.dumps(record)),
    )
