"""Paired devices, pending pairing requests and device tokens (spec §5.6, §6), in memory.

This is the pure decision core: it never touches a database or a socket. The gateway
loads it from the state store at start and persists every change it returns.

Device tokens are 32 random bytes (base64url); only their SHA-256 is kept, and a
presented token is compared in constant time. Because the value is not kept, a device
that authenticates with the shared secret while holding an older token gets a new one
(rotation); a device that authenticated with its token gets the same token back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .limits import PAIRING_MAX_PENDING, PAIRING_PENDING_TTL_MS
from .scopes import scope_satisfied

__all__ = [
    "DeviceRecord",
    "DeviceToken",
    "PairingReason",
    "PairingRegistry",
    "PendingRequest",
    "hash_token",
    "new_token",
]

PairingReason = Literal["not-paired", "role-upgrade", "scope-upgrade", "metadata-upgrade"]


def _with_present(entry: dict[str, Any], optional: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Add the optional members that have a value; absent ones are omitted, never null."""
    entry.update((key, value) for key, value in optional if value is not None)
    return entry


def _client_fields(record: Any) -> tuple[tuple[str, Any], ...]:
    """Return the optional client metadata a record and a request both carry."""
    return (
        ("displayName", record.display_name),
        ("platform", record.platform),
        ("deviceFamily", record.device_family),
        ("clientId", record.client_id),
        ("clientMode", record.client_mode),
        ("remoteIp", record.remote_ip),
    )


def new_token() -> str:
    """Return a fresh device token: 32 CSPRNG bytes, base64url without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def hash_token(token: str) -> str:
    """Return the stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class DeviceToken:
    """One device token's record; `token_hash` never leaves the gateway."""

    role: str
    token_hash: str
    scopes: tuple[str, ...]
    created_at_ms: int
    rotated_at_ms: int | None = None
    revoked_at_ms: int | None = None
    last_used_at_ms: int | None = None

    def summary(self) -> dict[str, Any]:
        """Return the listing shape: everything but the token."""
        entry: dict[str, Any] = {
            "role": self.role,
            "scopes": list(self.scopes),
            "createdAtMs": self.created_at_ms,
        }
        return _with_present(
            entry,
            (
                ("rotatedAtMs", self.rotated_at_ms),
                ("revokedAtMs", self.revoked_at_ms),
                ("lastUsedAtMs", self.last_used_at_ms),
            ),
        )


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A paired device with its approved roles and scopes and pinned metadata."""

    device_id: str
    public_key: str
    roles: tuple[str, ...]
    approved_scopes: tuple[str, ...]
    created_at_ms: int
    approved_at_ms: int
    display_name: str | None = None
    platform: str | None = None
    device_family: str | None = None
    client_id: str | None = None
    client_mode: str | None = None
    remote_ip: str | None = None
    tokens: dict[str, DeviceToken] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Return PairedDeviceSummary: the record with token values left out."""
        entry: dict[str, Any] = {
            "deviceId": self.device_id,
            "publicKey": self.public_key,
            "roles": list(self.roles),
            "approvedScopes": list(self.approved_scopes),
            "createdAtMs": self.created_at_ms,
            "approvedAtMs": self.approved_at_ms,
            "tokens": [token.summary() for token in self.tokens.values()],
        }
        return _with_present(entry, _client_fields(self))


@dataclass(frozen=True, slots=True)
class PendingRequest:
    """A device waiting for an operator's approval."""

    request_id: str
    device_id: str
    public_key: str
    role: str
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    reason: PairingReason
    is_repair: bool
    ts: int
    display_name: str | None = None
    platform: str | None = None
    device_family: str | None = None
    client_id: str | None = None
    client_mode: str | None = None
    remote_ip: str | None = None

    def payload(self) -> dict[str, Any]:
        """Return the wire shape (also the `device.pair.requested` payload)."""
        entry: dict[str, Any] = {
            "requestId": self.request_id,
            "deviceId": self.device_id,
            "publicKey": self.public_key,
            "role": self.role,
            "roles": list(self.roles),
            "scopes": list(self.scopes),
            "reason": self.reason,
            "isRepair": self.is_repair,
            "ts": self.ts,
        }
        return _with_present(entry, _client_fields(self))


@dataclass(frozen=True, slots=True)
class Applicant:
    """What a connecting device asks for."""

    device_id: str
    public_key: str
    role: str
    scopes: tuple[str, ...]
    platform: str | None
    device_family: str | None
    display_name: str | None = None
    client_id: str | None = None
    client_mode: str | None = None
    remote_ip: str | None = None


def _covers(held: Iterable[str], wanted: Iterable[str]) -> bool:
    held = tuple(held)
    return all(scope_satisfied(held, scope) for scope in wanted)


def _union(first: Sequence[str], second: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *second]))


class PairingRegistry:
    """Decide pairing and device-token questions against in-memory records."""

    def __init__(
        self,
        devices: Iterable[DeviceRecord] = (),
        pending: Iterable[PendingRequest] = (),
        *,
        request_ids: Callable[[], str] = lambda: str(uuid.uuid4()),
        tokens: Callable[[], str] = new_token,
    ) -> None:
        self.devices: dict[str, DeviceRecord] = {d.device_id: d for d in devices}
        self.pending: OrderedDict[str, PendingRequest] = OrderedDict(
            (p.request_id, p) for p in sorted(pending, key=lambda p: p.ts)
        )
        self._request_ids = request_ids
        self._tokens = tokens

    # -- questions ----------------------------------------------------------------

    def token_for(self, device_id: str, role: str) -> DeviceToken | None:
        """Return the unrevoked token record of (device, role), if any."""
        record = self.devices.get(device_id)
        token = record.tokens.get(role) if record else None
        if token is None or token.revoked_at_ms is not None:
            return None
        return token

    def token_matches(self, device_id: str, role: str, presented: str) -> bool:
        """Return whether `presented` is the unrevoked token of (device, role)."""
        token = self.token_for(device_id, role)
        if token is None:
            return False
        return hmac.compare_digest(hash_token(presented), token.token_hash)

    def find_token(self, presented: str) -> tuple[str, DeviceToken] | None:
        """Return (deviceId, token record) of the unrevoked token `presented`, or None.

        For credentials that arrive without a device id (an HTTP bearer token): every
        stored hash is compared in constant time, so the answer takes the same time
        whichever token matches.
        """
        wanted = hash_token(presented)
        found: tuple[str, DeviceToken] | None = None
        for record in self.devices.values():
            for token in record.tokens.values():
                matches = hmac.compare_digest(wanted, token.token_hash)
                if matches and token.revoked_at_ms is None and found is None:
                    found = (record.device_id, token)
        return found

    def pairing_reason(self, applicant: Applicant) -> PairingReason | None:
        """Return why `applicant` needs (re)pairing, or None when it is paired as asked."""
        record = self.devices.get(applicant.device_id)
        if record is None:
            return "not-paired"
        if applicant.role not in record.roles:
            return "role-upgrade"
        if not _covers(record.approved_scopes, applicant.scopes):
            return "scope-upgrade"
        if (record.platform, record.device_family) != (
            applicant.platform,
            applicant.device_family,
        ):
            return "metadata-upgrade"
        return None

    # -- pending requests ---------------------------------------------------------

    def expire(self, now_ms: int) -> list[str]:
        """Drop requests not refreshed for 5 minutes; return their ids."""
        expired = [
            rid for rid, p in self.pending.items() if now_ms - p.ts >= PAIRING_PENDING_TTL_MS
        ]
        for request_id in expired:
            del self.pending[request_id]
        return expired

    def request(
        self, applicant: Applicant, reason: PairingReason, now_ms: int
    ) -> tuple[PendingRequest, bool, list[str]]:
        """Record a pairing request: refresh a same one, or supersede a changed one.

        Returns:
            The request, whether it is new (announce it), and ids of requests it dropped.
        """
        dropped = self.expire(now_ms)
        existing = next(
            (p for p in self.pending.values() if p.device_id == applicant.device_id), None
        )
        if (
            existing is not None
            and existing.public_key == applicant.public_key
            and applicant.role in existing.roles
            and _covers(existing.scopes, applicant.scopes)
        ):
            refreshed = replace(existing, ts=now_ms)
            self.pending[existing.request_id] = refreshed
            self.pending.move_to_end(existing.request_id)
            return refreshed, False, dropped
        roles: tuple[str, ...] = (applicant.role,)
        scopes = applicant.scopes
        if existing is not None:
            del self.pending[existing.request_id]
            dropped.append(existing.request_id)
            roles = _union(existing.roles, roles)
            scopes = _union(existing.scopes, scopes)
        created = PendingRequest(
            request_id=self._request_ids(),
            device_id=applicant.device_id,
            public_key=applicant.public_key,
            role=applicant.role,
            roles=roles,
            scopes=scopes,
            reason=reason,
            is_repair=applicant.device_id in self.devices,
            ts=now_ms,
            display_name=applicant.display_name,
            platform=applicant.platform,
            device_family=applicant.device_family,
            client_id=applicant.client_id,
            client_mode=applicant.client_mode,
            remote_ip=applicant.remote_ip,
        )
        self.pending[created.request_id] = created
        while len(self.pending) > PAIRING_MAX_PENDING:
            oldest, _ = self.pending.popitem(last=False)
            dropped.append(oldest)
        return created, True, dropped

    def approve(self, request_id: str, now_ms: int) -> DeviceRecord:
        """Merge a request's roles and scopes into the device record.

        Raises:
            KeyError: unknown or expired request.
        """
        self.expire(now_ms)
        request = self.pending.pop(request_id)
        record = self.devices.get(request.device_id)
        if record is None or record.public_key != request.public_key:
            record = DeviceRecord(
                device_id=request.device_id,
                public_key=request.public_key,
                roles=request.roles,
                approved_scopes=request.scopes,
                created_at_ms=now_ms,
                approved_at_ms=now_ms,
            )
        else:
            record = replace(
                record,
                roles=_union(record.roles, request.roles),
                approved_scopes=_union(record.approved_scopes, request.scopes),
                approved_at_ms=now_ms,
            )
        record = replace(
            record,
            display_name=request.display_name,
            platform=request.platform,
            device_family=request.device_family,
            client_id=request.client_id,
            client_mode=request.client_mode,
            remote_ip=request.remote_ip,
        )
        self.devices[record.device_id] = record
        return record

    def reject(self, request_id: str, now_ms: int) -> PendingRequest:
        """Delete a pending request.

        Raises:
            KeyError: unknown or expired request.
        """
        self.expire(now_ms)
        return self.pending.pop(request_id)

    def remove(self, device_id: str) -> DeviceRecord:
        """Forget a paired device and its tokens.

        Raises:
            KeyError: unknown device.
        """
        return self.devices.pop(device_id)

    # -- tokens -------------------------------------------------------------------

    def issue(
        self, device_id: str, role: str, scopes: Sequence[str], now_ms: int, presented: str | None
    ) -> tuple[str, DeviceToken]:
        """Return the token for a connecting device: the presented one, or a new one.

        `presented` is the token the device authenticated with, when it did; it is
        returned as is if its scopes cover the connection's scopes.
        """
        record = self.devices[device_id]
        current = self.token_for(device_id, role)
        if (
            presented is not None
            and current is not None
            and _covers(current.scopes, scopes)
            and hmac.compare_digest(hash_token(presented), current.token_hash)
        ):
            used = replace(current, last_used_at_ms=now_ms)
            self._put_token(record, used)
            return presented, used
        allowed = tuple(s for s in scopes if scope_satisfied(record.approved_scopes, s))
        return self._mint(record, role, allowed, now_ms, previous=record.tokens.get(role))

    def rotate(
        self, device_id: str, role: str, scopes: Sequence[str] | None, now_ms: int
    ) -> tuple[str, DeviceToken]:
        """Replace (device, role)'s token; default scopes are the old token's.

        Raises:
            KeyError: unknown device or role.
            ValueError: scopes beyond the device's approved scopes.
        """
        record = self.devices[device_id]
        if role not in record.roles:
            raise KeyError(role)
        old = record.tokens.get(role)
        wanted = tuple(scopes) if scopes is not None else (old.scopes if old else ())
        if not _covers(record.approved_scopes, wanted):
            raise ValueError("scopes beyond the approved ones")
        return self._mint(record, role, wanted, now_ms, previous=old)

    def revoke(self, device_id: str, role: str, now_ms: int) -> DeviceToken:
        """Revoke (device, role)'s token.

        Raises:
            KeyError: unknown device, role or token.
        """
        record = self.devices[device_id]
        token = record.tokens[role]
        revoked = replace(token, revoked_at_ms=now_ms)
        self._put_token(record, revoked)
        return revoked

    def _mint(
        self,
        record: DeviceRecord,
        role: str,
        scopes: tuple[str, ...],
        now_ms: int,
        previous: DeviceToken | None,
    ) -> tuple[str, DeviceToken]:
        value = self._tokens()
        token = DeviceToken(
            role=role,
            token_hash=hash_token(value),
            scopes=scopes,
            created_at_ms=previous.created_at_ms if previous else now_ms,
            rotated_at_ms=now_ms if previous else None,
        )
        self._put_token(record, token)
        return value, token

    def _put_token(self, record: DeviceRecord, token: DeviceToken) -> None:
        tokens = {**record.tokens, token.role: token}
        self.devices[record.device_id] = replace(record, tokens=tokens)
