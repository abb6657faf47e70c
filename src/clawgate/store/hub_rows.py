"""The hub's rows and the repository interface both hub databases implement (spec §7.2).

``HubRepository`` is what the hub asks of its database, in rows and JSON: ``HubDatabase``
(``hub_db``, SQLite, one instance) and ``PgHubDatabase`` (``hub_pg``, PostgreSQL, several
instances) implement it with the same schema steps (``hub_schema``). Both commit writes in
the order they were called: a write handed over before another commits no later than it.

Exceptions: ``StoreError`` (the database cannot be opened, migrated or reached),
``StoreClosedError`` (a call while not open), ``StaleRevision`` (``put_desired`` with a stale
``if_revision``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

__all__ = [
    "PENDING_STATE",
    "REPORTS_KEPT",
    "CommandRow",
    "DaemonRow",
    "DesiredRow",
    "HubRepository",
    "KeyRow",
    "StaleRevision",
    "SweepRow",
]

#: Reports kept per daemon; older ones are deleted as new ones arrive.
REPORTS_KEPT: Final = 50
#: The state of a command no ack has reached yet.
PENDING_STATE: Final = "pending"


class StaleRevision(Exception):
    """``put_desired`` was given an ``if_revision`` that is not the current revision."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the desired state is at revision {current}")
        self.current = current


@dataclass(frozen=True, slots=True)
class KeyRow:
    """A row of ``api_keys`` without its hash."""

    key_id: str
    label: str
    created_at: str
    revoked_at: str | None = None


@dataclass(frozen=True, slots=True)
class DaemonRow:
    """A row of ``daemons`` with its desired revision (0 when none) and, maybe, last report.

    ``connected`` is true only while the session's instance is alive (its heartbeat is
    recent), so a killed instance's daemons read as offline without anyone closing them.
    """

    daemon_id: str
    info: dict[str, Any]
    session_id: str | None
    connected: bool
    last_seen_at: str | None
    desired_revision: int
    last_applied_revision: int
    converged: bool | None
    last_report: dict[str, Any] | None = None
    instance_id: str | None = None


@dataclass(frozen=True, slots=True)
class DesiredRow:
    """A row of ``desired_states``; ``integrations`` is its JSON, ``sealed`` an opaque blob."""

    daemon_id: str
    revision: int
    issued_at: str
    integrations: list[dict[str, Any]]
    sealed: bytes | None = None


@dataclass(frozen=True, slots=True)
class CommandRow:
    """A row of ``commands`` with its JSON decoded and, when loaded with them, its acks."""

    command_id: str
    daemon_id: str
    idempotency_key: str | None
    spec: dict[str, Any]
    sealed: bytes | None
    state: str = PENDING_STATE
    terminal: bool = False
    result: Any = None
    error: dict[str, Any] | None = None
    acks: list[dict[str, Any]] = field(default_factory=list)
    updated_at: str | None = None


@dataclass(frozen=True, slots=True)
class SweepRow:
    """What one held daemon should have: its owning session, revision and open commands."""

    daemon_id: str
    session_id: str | None
    desired_revision: int
    unsettled: list[str]


class HubRepository(Protocol):
    """The hub's durable state in rows; every method may raise ``StoreError``."""

    @property
    def where(self) -> str:
        """Where the data lives, for messages (a path, or a URL without its password)."""
        ...

    async def open(self) -> None:
        """Connect and apply the schema steps not yet applied."""
        ...

    async def close(self) -> None:
        """Finish queued writes and disconnect; idempotent."""
        ...

    async def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers."""
        ...

    async def add_key(self, key_id: str, key_hash: str, label: str, now: str) -> KeyRow:
        """Store a new key by its hash."""
        ...

    async def revoke_key(self, key_id: str, now: str) -> KeyRow | None:
        """Revoke a key; return it, or None when no such key exists."""
        ...

    async def list_keys(self) -> list[KeyRow]:
        """Return every key, newest first."""
        ...

    async def find_key(self, key_hash: str) -> KeyRow | None:
        """Return the unrevoked key with this hash, if any."""
        ...

    async def revoked_keys(self, key_ids: list[str]) -> set[str]:
        """Return which of ``key_ids`` are revoked."""
        ...

    async def beat(self, instance_id: str, now: str, now_s: float) -> None:
        """Record that ``instance_id`` is alive at ``now_s`` (epoch seconds).

        It commits at once, ahead of queued writes: a backlog of writes must not make the
        instance's daemons look offline.
        """
        ...

    async def open_session(
        self,
        daemon_id: str,
        session_id: str,
        instance_id: str,
        info: dict[str, Any],
        last_applied_revision: int,
        now: str,
    ) -> None:
        """Record that ``session_id`` on ``instance_id`` now holds the daemon."""
        ...

    async def close_session(self, daemon_id: str, session_id: str, now: str) -> None:
        """Mark the daemon offline if ``session_id`` still holds it."""
        ...

    async def touch(self, sessions: list[tuple[str, str]], now: str) -> None:
        """Set ``last_seen_at`` of each ``(daemon_id, session_id)`` still holding its daemon."""
        ...

    async def list_daemons(self, alive_after: float) -> list[DaemonRow]:
        """Return every known daemon; instances silent since ``alive_after`` hold none."""
        ...

    async def get_daemon(self, daemon_id: str, alive_after: float) -> DaemonRow | None:
        """Return one daemon with its last report."""
        ...

    async def put_desired(
        self,
        daemon_id: str,
        integrations: list[dict[str, Any]],
        seal: Callable[[int], bytes | None],
        if_revision: int | None,
        now: str,
    ) -> DesiredRow:
        """Store the next revision (previous + 1) in one transaction.

        Raises:
            StaleRevision: ``if_revision`` is given and is not the current revision.
        """
        ...

    async def get_desired(self, daemon_id: str) -> DesiredRow | None:
        """Return the daemon's current desired state, if one was ever written."""
        ...

    async def add_command(
        self,
        *,
        command_id: str,
        daemon_id: str,
        idempotency_key: str | None,
        spec: dict[str, Any],
        sealed: bytes | None,
        expires_at: float,
        issued_at: str,
    ) -> tuple[CommandRow, bool]:
        """Store a ``pending`` command; with a known idempotency key return that one and False."""
        ...

    async def get_command(self, command_id: str) -> CommandRow | None:
        """Return a command with its ack history."""
        ...

    async def unsettled_commands(self, daemon_id: str, expiring_after: float) -> list[CommandRow]:
        """Return the daemon's non-terminal commands expiring after the given time, in order."""
        ...

    async def list_commands(self, daemon_id: str, limit: int) -> list[CommandRow]:
        """Return the daemon's latest ``limit`` commands, newest first, without their acks."""
        ...

    async def sweep(self, daemon_ids: list[str], expiring_after: float) -> list[SweepRow]:
        """Return, for each known daemon of ``daemon_ids``, its owner, revision and open ids."""
        ...

    async def record_ack(
        self, daemon_id: str, ack: dict[str, Any], *, terminal: bool, now: str
    ) -> tuple[CommandRow, bool] | None:
        """Apply a COMMAND_ACK unless the command already has a terminal one.

        Returns:
            The command after the ack and whether the ack changed it; None when the daemon
            has no such command.
        """
        ...

    async def add_report(self, daemon_id: str, report: dict[str, Any], now: str) -> None:
        """Store a report and update the daemon's applied revision and convergence."""
        ...

    async def list_reports(self, daemon_id: str, limit: int) -> list[dict[str, Any]]:
        """Return recent reports, newest first."""
        ...
