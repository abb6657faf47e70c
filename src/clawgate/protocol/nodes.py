"""Node rules, pure: effective commands, command-surface approval, issued invoke ids (§10.5).

A node's commands pass three filters before an operator may invoke them:
1. the node declared them in `connect.commands`;
2. the gateway's command policy allows them: the default allowlist plus `[nodes]
   allow_commands`, minus `deny_commands` (dangerous commands only when allowed);
3. an operator approved that command surface (`node.pair.approve`), or the node connected
   from loopback with the shared secret, which approves it on the spot. A node that later
   declares a command outside its approved surface asks again; until then only the
   approved part is effective.

Nothing here reads a clock or touches a socket: times come in as arguments.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from .limits import NODE_ISSUED_IDS_REMEMBERED, PAIRING_MAX_PENDING, PAIRING_PENDING_TTL_MS

__all__ = [
    "DANGEROUS_COMMANDS",
    "DEFAULT_ALLOWED_COMMANDS",
    "CommandPolicy",
    "IssuedIds",
    "NodeDeclaration",
    "NodeSurface",
    "SurfaceApplicant",
    "SurfaceChanges",
    "SurfaceRegistry",
    "SurfaceRequest",
]

#: Commands a node may offer without any configuration (spec §10.5, clawgate chooses).
DEFAULT_ALLOWED_COMMANDS: Final = frozenset(
    {
        "canvas.present",
        "canvas.hide",
        "canvas.navigate",
        "canvas.eval",
        "canvas.snapshot",
        "canvas.a2ui.push",
        "canvas.a2ui.pushJSONL",
        "canvas.a2ui.reset",
        "camera.list",
        "location.get",
        "device.info",
        "device.status",
        "system.notify",
    }
)

#: Commands that reach into the machine: never effective unless `allow_commands` names them.
DANGEROUS_COMMANDS: Final = frozenset(
    {
        "system.run",
        "system.run.prepare",
        "system.which",
        "system.execApprovals.get",
        "system.execApprovals.set",
        "browser.proxy",
        "camera.snap",
        "camera.clip",
        "screen.record",
        "sms.send",
    }
)

#: Commands whose surface needs `operator.admin` to approve; the others need `operator.write`.
ADMIN_APPROVAL_PREFIXES: Final = ("system.", "browser.", "fs.", "file.", "terminal.", "sms.")


def _matches(command: str, patterns: Iterable[str]) -> bool:
    """Return whether `command` is named by a pattern: exact, or `prefix.*`."""
    for pattern in patterns:
        if pattern == command or pattern == "*":
            return True
        if pattern.endswith(".*") and command.startswith(pattern[:-1]):
            return True
    return False


@dataclass(frozen=True, slots=True)
class CommandPolicy:
    """The gateway's `[nodes]` allow and deny lists (exact names or `prefix.*`)."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def allows(self, command: str) -> bool:
        """Return whether the policy lets a node offer `command`."""
        if _matches(command, self.deny):
            return False
        return command in DEFAULT_ALLOWED_COMMANDS or _matches(command, self.allow)

    def effective(self, declared: Iterable[str]) -> tuple[str, ...]:
        """Return the declared commands the policy allows, in order, de-duplicated."""
        return tuple(dict.fromkeys(c for c in declared if self.allows(c)))


def approval_scopes(commands: Sequence[str]) -> list[str]:
    """Return the scopes an approver needs for a command surface (as OpenClaw reports them)."""
    if any(c.startswith(ADMIN_APPROVAL_PREFIXES) for c in commands):
        return ["operator.pairing", "operator.admin"]
    if commands:
        return ["operator.pairing", "operator.write"]
    return ["operator.pairing"]


@dataclass(frozen=True, slots=True)
class NodeDeclaration:
    """What a node declared in its `connect`: capabilities, commands, permissions, PATH."""

    caps: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    permissions: dict[str, bool] = field(default_factory=dict)
    path_env: str | None = None

    @classmethod
    def from_connect(
        cls,
        caps: Sequence[str] | None,
        commands: Sequence[str] | None,
        permissions: dict[str, bool] | None,
        path_env: str | None,
    ) -> NodeDeclaration:
        """Build from `connect` params, de-duplicating the lists."""
        return cls(
            caps=tuple(dict.fromkeys(caps or ())),
            commands=tuple(dict.fromkeys(commands or ())),
            permissions=dict(permissions or {}),
            path_env=path_env,
        )


@dataclass(frozen=True, slots=True)
class NodeSurface:
    """A node's approved command surface and the name an operator gave it."""

    node_id: str
    commands: tuple[str, ...] = ()
    approved_at_ms: int | None = None
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class SurfaceApplicant:
    """What a connecting node declares."""

    node_id: str
    commands: tuple[str, ...]
    caps: tuple[str, ...] = ()
    display_name: str | None = None
    platform: str | None = None
    version: str | None = None
    device_family: str | None = None
    model_identifier: str | None = None
    client_id: str | None = None
    client_mode: str | None = None
    remote_ip: str | None = None


@dataclass(frozen=True, slots=True)
class SurfaceRequest:
    """A node's command surface waiting for an operator."""

    request_id: str
    node_id: str
    commands: tuple[str, ...]
    caps: tuple[str, ...]
    is_repair: bool
    ts: int
    display_name: str | None = None
    platform: str | None = None
    version: str | None = None
    device_family: str | None = None
    model_identifier: str | None = None
    client_id: str | None = None
    client_mode: str | None = None
    remote_ip: str | None = None

    def payload(self) -> dict[str, Any]:
        """Return the wire shape (also the `node.pair.requested` payload)."""
        entry: dict[str, Any] = {
            "requestId": self.request_id,
            "nodeId": self.node_id,
            "caps": list(self.caps),
            "commands": list(self.commands),
            "requiredApproveScopes": approval_scopes(self.commands),
            "isRepair": self.is_repair,
            "ts": self.ts,
        }
        optional = (
            ("clientId", self.client_id),
            ("clientMode", self.client_mode),
            ("displayName", self.display_name),
            ("platform", self.platform),
            ("version", self.version),
            ("deviceFamily", self.device_family),
            ("modelIdentifier", self.model_identifier),
            ("remoteIp", self.remote_ip),
        )
        entry.update((key, value) for key, value in optional if value is not None)
        return entry


@dataclass(slots=True)
class SurfaceChanges:
    """What a node's connect changed in the surface registry, to persist and announce."""

    surface: NodeSurface | None = None
    request: SurfaceRequest | None = None
    request_is_new: bool = False
    auto_approved: str | None = None
    dropped_requests: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """Whether nothing changed."""
        return self.surface is None and self.request is None and not self.dropped_requests


class SurfaceRegistry:
    """Approved node command surfaces and the requests waiting for approval, in memory."""

    def __init__(
        self,
        surfaces: Iterable[NodeSurface] = (),
        pending: Iterable[SurfaceRequest] = (),
        *,
        request_ids: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.surfaces: dict[str, NodeSurface] = {s.node_id: s for s in surfaces}
        self.pending: OrderedDict[str, SurfaceRequest] = OrderedDict(
            (p.request_id, p) for p in sorted(pending, key=lambda p: p.ts)
        )
        self._request_ids = request_ids

    def approved(self, node_id: str) -> tuple[str, ...]:
        """Return the node's approved commands (empty when none were approved)."""
        surface = self.surfaces.get(node_id)
        return surface.commands if surface is not None else ()

    def pending_for(self, node_id: str) -> SurfaceRequest | None:
        """Return the node's waiting request, if any."""
        return next((p for p in self.pending.values() if p.node_id == node_id), None)

    def expire(self, now_ms: int) -> list[str]:
        """Drop requests not refreshed for the pairing TTL; return their ids."""
        lapsed = [r for r, p in self.pending.items() if now_ms - p.ts >= PAIRING_PENDING_TTL_MS]
        for request_id in lapsed:
            del self.pending[request_id]
        return lapsed

    def connect(
        self, applicant: SurfaceApplicant, *, auto_approve: bool, now_ms: int
    ) -> SurfaceChanges:
        """Decide a connecting node's surface: already approved, approved now, or asked for.

        Args:
            applicant: what the node declares.
            auto_approve: the node came from loopback with the shared secret.
            now_ms: the gateway's clock.
        """
        changes = SurfaceChanges(dropped_requests=self.expire(now_ms))
        approved = set(self.approved(applicant.node_id))
        if set(applicant.commands) <= approved:
            return changes
        request, is_new, dropped = self._request(applicant, now_ms)
        changes.dropped_requests.extend(dropped)
        if auto_approve:
            changes.surface = self.approve(request.request_id, now_ms)
            changes.auto_approved = request.request_id
            changes.dropped_requests.append(request.request_id)
            return changes
        changes.request = request
        changes.request_is_new = is_new
        return changes

    def _request(
        self, applicant: SurfaceApplicant, now_ms: int
    ) -> tuple[SurfaceRequest, bool, list[str]]:
        existing = self.pending_for(applicant.node_id)
        if existing is not None and existing.commands == applicant.commands:
            refreshed = replace(existing, ts=now_ms)
            self.pending[existing.request_id] = refreshed
            self.pending.move_to_end(existing.request_id)
            return refreshed, False, []
        dropped: list[str] = []
        if existing is not None:
            del self.pending[existing.request_id]
            dropped.append(existing.request_id)
        created = SurfaceRequest(
            request_id=self._request_ids(),
            node_id=applicant.node_id,
            commands=applicant.commands,
            caps=applicant.caps,
            is_repair=applicant.node_id in self.surfaces,
            ts=now_ms,
            display_name=applicant.display_name,
            platform=applicant.platform,
            version=applicant.version,
            device_family=applicant.device_family,
            model_identifier=applicant.model_identifier,
            client_id=applicant.client_id,
            client_mode=applicant.client_mode,
            remote_ip=applicant.remote_ip,
        )
        self.pending[created.request_id] = created
        while len(self.pending) > PAIRING_MAX_PENDING:
            oldest, _ = self.pending.popitem(last=False)
            dropped.append(oldest)
        return created, True, dropped

    def approve(self, request_id: str, now_ms: int) -> NodeSurface:
        """Make a request's commands the node's approved surface.

        Raises:
            KeyError: unknown or expired request.
        """
        self.expire(now_ms)
        request = self.pending.pop(request_id)
        current = self.surfaces.get(request.node_id, NodeSurface(request.node_id))
        surface = replace(current, commands=request.commands, approved_at_ms=now_ms)
        self.surfaces[request.node_id] = surface
        return surface

    def reject(self, request_id: str, now_ms: int) -> SurfaceRequest:
        """Drop a waiting request; the approved surface stays as it was.

        Raises:
            KeyError: unknown or expired request.
        """
        self.expire(now_ms)
        return self.pending.pop(request_id)

    def rename(self, node_id: str, display_name: str) -> NodeSurface:
        """Give a node the name operators see."""
        current = self.surfaces.get(node_id, NodeSurface(node_id))
        surface = replace(current, display_name=display_name)
        self.surfaces[node_id] = surface
        return surface

    def remove(self, node_id: str) -> tuple[NodeSurface | None, list[str]]:
        """Forget a node's surface and its waiting requests; return them for the store."""
        dropped = [r for r, p in self.pending.items() if p.node_id == node_id]
        for request_id in dropped:
            del self.pending[request_id]
        return self.surfaces.pop(node_id, None), dropped


class IssuedIds:
    """The last invoke ids issued to one node, so a result for a foreign id is refused."""

    __slots__ = ("_order", "_set")

    def __init__(self, capacity: int = NODE_ISSUED_IDS_REMEMBERED) -> None:
        self._order: deque[str] = deque(maxlen=capacity)
        self._set: set[str] = set()

    def add(self, invoke_id: str) -> None:
        """Remember an id; the oldest is forgotten beyond the capacity."""
        if len(self._order) == self._order.maxlen:
            self._set.discard(self._order[0])
        self._order.append(invoke_id)
        self._set.add(invoke_id)

    def __contains__(self, invoke_id: object) -> bool:
        return invoke_id in self._set
