"""What the hub keeps durably, behind a small interface (control-plane spec §7.2).

``HubStore`` is the one seam between the hub and its database: ``repo_store`` implements it
on SQLite (one instance) and on PostgreSQL (several instances behind a load balancer).
Records never hold a secret value; secrets travel as opaque sealed blobs (see ``vault``).

Exception tree::

    HubStoreError          the database cannot be used
    ├── HubLocked          another hub holds this database (single instance only)
    └── RevisionConflict   ``ifRevision`` no longer matches the current revision
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..store.hub_rows import SweepRow

__all__ = [
    "AckOutcome",
    "CommandRecord",
    "DaemonRecord",
    "DesiredRecord",
    "HubLocked",
    "HubStore",
    "HubStoreError",
    "KeyRecord",
    "NewCommand",
    "RevisionConflict",
    "SessionInfo",
    "SweepRow",
    "plugins_view",
]


class HubStoreError(Exception):
    """The hub database cannot be used."""


class HubLocked(HubStoreError):
    """Another hub already serves this database."""


class RevisionConflict(HubStoreError):
    """The caller's ``ifRevision`` is stale."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the desired state is at revision {current}")
        self.current = current


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A daemon API key; only its SHA-256 hash is stored."""

    key_id: str
    label: str
    created_at: str
    revoked_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the key as the operator API shows it (never the key itself)."""
        return {
            "keyId": self.key_id,
            "label": self.label,
            "createdAt": self.created_at,
            "revokedAt": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What SERVICE_REGISTER told the hub about a daemon."""

    daemon_id: str
    session_id: str
    instance_id: str
    key_id: str
    hostname: str
    platform: str
    daemon_version: str
    arch: str
    plugins: list[dict[str, Any]]
    last_applied_revision: int
    queue_depth: int


def plugins_view(
    registered: list[dict[str, Any]], last_report: dict[str, Any] | None, daemon_connected: bool
) -> list[dict[str, Any]]:
    """Return the daemon's plugins with ``connected``, from the freshest word the hub has.

    SERVICE_REGISTER lists the plugins once per link; the daemon reports again after every
    plugin connects or leaves (a pass with trigger ``plugins``), so the last report's list
    wins: a plugin that left shows ``connected: false`` as soon as that report is in. While
    the daemon itself is offline no plugin is reachable, so none shows connected.
    """
    reported = (last_report or {}).get("plugins")
    if not isinstance(reported, list):
        return [{**p, "connected": daemon_connected} for p in registered]
    by_name = {p.get("name"): p for p in registered}
    view = [
        {
            **by_name.get(p["name"], {}),
            "name": p["name"],
            "version": p["version"],
            "connected": bool(p["connected"]) and daemon_connected,
        }
        for p in reported
    ]
    listed = {p["name"] for p in reported}
    view += [{**p, "connected": False} for p in registered if p.get("name") not in listed]
    return view


@dataclass(frozen=True, slots=True)
class DaemonRecord:
    """A daemon as the hub knows it (it may never have connected)."""

    daemon_id: str
    hostname: str | None
    platform: str | None
    daemon_version: str | None
    arch: str | None
    connected: bool
    session_id: str | None
    last_seen_at: str | None
    desired_revision: int
    last_applied_revision: int
    converged: bool | None
    plugins: list[dict[str, Any]]
    queue_depth: int
    last_report: dict[str, Any] | None = None

    def to_json(self, *, detail: bool = False) -> dict[str, Any]:
        """Return the listing fields of spec §7.1; ``detail`` adds plugins and the report."""
        out: dict[str, Any] = {
            "daemonId": self.daemon_id,
            "hostname": self.hostname,
            "platform": self.platform,
            "daemonVersion": self.daemon_version,
            "connected": self.connected,
            "lastSeenAt": self.last_seen_at,
            "desiredRevision": self.desired_revision,
            "lastAppliedRevision": self.last_applied_revision,
            "converged": self.converged,
        }
        if detail:
            out.update(
                arch=self.arch,
                sessionId=self.session_id,
                plugins=self.plugins,
                queueDepth=self.queue_depth,
                lastReport=self.last_report,
            )
        return out


@dataclass(frozen=True, slots=True)
class DesiredRecord:
    """A daemon's current desired state without secret values.

    ``integrations`` entries hold ``secretNames`` instead of ``secrets``; ``sealed`` is the
    vault's blob for the values (None when the vault keeps them in memory).
    """

    daemon_id: str
    revision: int
    issued_at: str
    integrations: list[dict[str, Any]]
    sealed: bytes | None = None


@dataclass(frozen=True, slots=True)
class NewCommand:
    """A command an operator posted, before it is stored."""

    command_id: str
    daemon_id: str
    name: str
    target: dict[str, Any]
    params: dict[str, Any]
    secret_names: list[str]
    idempotency_key: str | None
    issued_at: str
    expires_at: str
    timeout_ms: int | None
    sealed: bytes | None = None


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """A command and everything the daemon said about it."""

    command: NewCommand
    state: str
    terminal: bool
    result: Any = None
    error: dict[str, Any] | None = None
    acks: list[dict[str, Any]] = field(default_factory=list)
    updated_at: str | None = None

    @property
    def command_id(self) -> str:
        """The command's id."""
        return self.command.command_id

    def to_json(self) -> dict[str, Any]:
        """Return the record as the operator API shows it (secret names only)."""
        cmd = self.command
        return {
            "commandId": cmd.command_id,
            "daemonId": cmd.daemon_id,
            "name": cmd.name,
            "target": cmd.target,
            "params": cmd.params,
            "secrets": cmd.secret_names,
            "idempotencyKey": cmd.idempotency_key,
            "issuedAt": cmd.issued_at,
            "expiresAt": cmd.expires_at,
            "timeoutMs": cmd.timeout_ms,
            "state": self.state,
            "terminal": self.terminal,
            "result": self.result,
            "error": self.error,
            "acks": self.acks,
            "updatedAt": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class AckOutcome:
    """What recording an ack did: the record after it, and whether it changed anything."""

    record: CommandRecord
    changed: bool


class HubStore(Protocol):
    """Durable hub state: keys, daemons, desired states, commands, acks, reports."""

    @property
    def where(self) -> str:
        """Where the state lives, for messages (never with a password)."""
        ...

    async def open(self) -> None:
        """Open the database (taking its lock, for SQLite) and apply its schema steps."""
        ...

    async def close(self) -> None:
        """Finish pending writes and release the database; idempotent."""
        ...

    async def ping(self) -> None:
        """Raise ``HubStoreError`` unless the database answers."""
        ...

    async def add_key(self, key_id: str, key_hash: str, label: str, now: str) -> KeyRecord:
        """Store a new key by its hash."""
        ...

    async def revoke_key(self, key_id: str, now: str) -> KeyRecord | None:
        """Revoke a key; return it, or None when no such key exists."""
        ...

    async def list_keys(self) -> list[KeyRecord]:
        """Return every key, newest first."""
        ...

    async def find_key(self, key_hash: str) -> KeyRecord | None:
        """Return the unrevoked key with this hash, if any."""
        ...

    async def revoked_keys(self, key_ids: list[str]) -> set[str]:
        """Return which of ``key_ids`` are revoked."""
        ...

    async def beat(self, instance_id: str, now: float) -> None:
        """Record that ``instance_id`` is alive at ``now`` (epoch seconds)."""
        ...

    async def open_session(self, info: SessionInfo, now: str) -> None:
        """Record that ``info.session_id`` on ``info.instance_id`` now holds the daemon."""
        ...

    async def close_session(self, daemon_id: str, session_id: str, now: str) -> None:
        """Mark the daemon offline if ``session_id`` still holds it."""
        ...

    async def touch(self, sessions: list[tuple[str, str]], now: str) -> None:
        """Set ``lastSeenAt`` of each ``(daemonId, sessionId)`` still holding its daemon."""
        ...

    async def list_daemons(self, alive_after: float) -> list[DaemonRecord]:
        """Return every known daemon; instances silent since ``alive_after`` hold none."""
        ...

    async def get_daemon(self, daemon_id: str, alive_after: float) -> DaemonRecord | None:
        """Return one daemon with its plugins and last report."""
        ...

    async def put_desired(
        self,
        daemon_id: str,
        integrations: list[dict[str, Any]],
        seal: Callable[[int], bytes | None],
        if_revision: int | None,
        now: str,
    ) -> DesiredRecord:
        """Store the next revision (previous + 1) in one transaction.

        ``seal(revision)`` returns the sealed secrets blob for the new revision.

        Raises:
            RevisionConflict: ``if_revision`` is given and is not the current revision.
        """
        ...

    async def get_desired(self, daemon_id: str) -> DesiredRecord | None:
        """Return the daemon's current desired state, if one was ever written."""
        ...

    async def add_command(self, command: NewCommand) -> tuple[CommandRecord, bool]:
        """Store a command; with a known idempotency key return the existing one and False."""
        ...

    async def get_command(self, command_id: str) -> CommandRecord | None:
        """Return a command with its ack history."""
        ...

    async def unsettled_commands(self, daemon_id: str, now: str) -> list[CommandRecord]:
        """Return the daemon's commands without a terminal ack still worth re-sending."""
        ...

    async def list_commands(self, daemon_id: str, limit: int) -> list[CommandRecord]:
        """Return the daemon's latest ``limit`` commands, newest first (acks left out)."""
        ...

    async def sweep(self, daemon_ids: list[str], now: str) -> list[SweepRow]:
        """Return each held daemon's owning session, revision and unsettled command ids."""
        ...

    async def record_ack(self, daemon_id: str, ack: dict[str, Any], now: str) -> AckOutcome | None:
        """Apply a COMMAND_ACK; None when the daemon has no such command.

        Exactly one terminal state is ever recorded; later acks change nothing.
        """
        ...

    async def add_report(self, daemon_id: str, report: dict[str, Any], now: str) -> None:
        """Store a report and update the daemon's applied revision and convergence."""
        ...

    async def list_reports(self, daemon_id: str, limit: int) -> list[dict[str, Any]]:
        """Return recent reports, newest first."""
        ...
