"""Persist the pairing registry's records (functions run on the store's owner thread)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from ..protocol.pairing import DeviceRecord, DeviceToken, PendingRequest

__all__ = [
    "delete_device",
    "delete_requests",
    "load_pairing",
    "save_changes",
    "save_device",
    "save_request",
]


def _device_to_json(record: DeviceRecord) -> str:
    data = dataclasses.asdict(record)
    data["tokens"] = {role: dataclasses.asdict(token) for role, token in record.tokens.items()}
    return json.dumps(data)


def _device_from_json(text: str) -> DeviceRecord:
    data: dict[str, Any] = json.loads(text)
    tokens = {
        role: DeviceToken(**{**token, "scopes": tuple(token["scopes"])})
        for role, token in data.pop("tokens").items()
    }
    return DeviceRecord(
        **{
            **data,
            "roles": tuple(data["roles"]),
            "approved_scopes": tuple(data["approved_scopes"]),
            "tokens": tokens,
        }
    )


def _request_from_json(text: str) -> PendingRequest:
    data: dict[str, Any] = json.loads(text)
    return PendingRequest(
        **{**data, "roles": tuple(data["roles"]), "scopes": tuple(data["scopes"])}
    )


def load_pairing(conn: sqlite3.Connection) -> tuple[list[DeviceRecord], list[PendingRequest]]:
    """Return every paired device and pending request."""
    devices = [
        _device_from_json(row[0]) for row in conn.execute("SELECT record FROM paired_devices")
    ]
    requests = [
        _request_from_json(row[0])
        for row in conn.execute("SELECT request FROM pairing_requests ORDER BY ts")
    ]
    return devices, requests


def save_device(conn: sqlite3.Connection, record: DeviceRecord) -> None:
    """Insert or replace a paired device."""
    conn.execute(
        "INSERT INTO paired_devices (device_id, record) VALUES (?, ?) "
        "ON CONFLICT (device_id) DO UPDATE SET record = excluded.record",
        (record.device_id, _device_to_json(record)),
    )


def delete_device(conn: sqlite3.Connection, device_id: str) -> None:
    """Forget a paired device."""
    conn.execute("DELETE FROM paired_devices WHERE device_id = ?", (device_id,))


def save_request(conn: sqlite3.Connection, request: PendingRequest) -> None:
    """Insert or replace a pending request."""
    conn.execute(
        "INSERT INTO pairing_requests (request_id, request, ts) VALUES (?, ?, ?) "
        "ON CONFLICT (request_id) DO UPDATE SET request = excluded.request, ts = excluded.ts",
        (request.request_id, json.dumps(dataclasses.asdict(request)), request.ts),
    )


def delete_requests(conn: sqlite3.Connection, request_ids: Iterable[str]) -> None:
    """Drop pending requests."""
    conn.executemany(
        "DELETE FROM pairing_requests WHERE request_id = ?", [(rid,) for rid in request_ids]
    )


def save_changes(
    conn: sqlite3.Connection,
    *,
    device: DeviceRecord | None,
    request: PendingRequest | None,
    dropped: Iterable[str],
    removed_device: str | None,
) -> None:
    """Write one pairing change set in the caller's transaction."""
    if device is not None:
        save_device(conn, device)
    if request is not None:
        save_request(conn, request)
    delete_requests(conn, dropped)
    if removed_device is not None:
        delete_device(conn, removed_device)
