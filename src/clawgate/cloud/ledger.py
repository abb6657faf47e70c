"""The reconciliation ledger's record of one integration (spec §5.2); no secret values.

``LedgerItem`` is what the reconciler works on; ``to_row``/``from_row`` turn it into the
store's ``LedgerRow`` and back, so the store knows nothing of statuses or errors.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from ..store.ledger_repo import LedgerRow
from .errors import ReconcileError

__all__ = ["ItemStatus", "LedgerItem"]


class ItemStatus(enum.StrEnum):
    """An integration's status in reports (§3.5)."""

    INSTALLED = "installed"
    ACTIVE = "active"
    INACTIVE = "inactive"
    ERROR = "error"
    REMOVED = "removed"
    PENDING = "pending"


@dataclasses.dataclass(slots=True)
class LedgerItem:
    """What the daemon knows an integration's owner has, and how converging it went.

    ``installed_version``/``spec_hash``/``config_hash``/``active`` describe what the owner
    holds as far as the daemon knows (updated by successful steps and drift checks);
    ``status``/``error``/``attempts``/``next_attempt_at`` describe the last attempt.
    """

    id: str
    status: ItemStatus = ItemStatus.PENDING
    installed_version: str | None = None
    spec_hash: str | None = None
    config_hash: str | None = None
    secret_fields: tuple[str, ...] = ()
    enabled: bool = True
    active: bool = False
    owner: str | None = None
    last_action: str | None = None
    attempts: int = 0
    error: ReconcileError | None = None
    next_attempt_at: int | None = None
    applied_revision: int = 0
    depends_on: tuple[str, ...] = ()
    updated_at: int = 0

    @classmethod
    def from_row(cls, row: LedgerRow) -> LedgerItem:
        """Build an item from its stored row."""
        return cls(
            id=row.id,
            status=ItemStatus(row.status),
            installed_version=row.installed_version,
            spec_hash=row.spec_hash,
            config_hash=row.config_hash,
            secret_fields=row.secret_fields,
            enabled=row.enabled,
            active=row.active,
            owner=row.owner,
            last_action=row.last_action,
            attempts=row.attempts,
            error=None if row.error is None else ReconcileError.from_json(row.error),
            next_attempt_at=row.next_attempt_at,
            applied_revision=row.applied_revision,
            depends_on=row.depends_on,
            updated_at=row.updated_at,
        )

    def to_row(self) -> LedgerRow:
        """Return the item as the store keeps it."""
        return LedgerRow(
            id=self.id,
            installed_version=self.installed_version,
            spec_hash=self.spec_hash,
            config_hash=self.config_hash,
            secret_fields=self.secret_fields,
            enabled=self.enabled,
            active=self.active,
            status=self.status.value,
            owner=self.owner,
            last_action=self.last_action,
            attempts=self.attempts,
            error=None if self.error is None else self.error.to_json(),
            next_attempt_at=self.next_attempt_at,
            applied_revision=self.applied_revision,
            depends_on=self.depends_on,
            updated_at=self.updated_at,
        )

    @property
    def installed(self) -> bool:
        """Whether the owner holds the integration."""
        return self.installed_version is not None

    def settled_status(self) -> ItemStatus:
        """Return the status that describes what is installed, ignoring the last attempt."""
        if not self.installed:
            return ItemStatus.PENDING
        if self.active:
            return ItemStatus.ACTIVE
        return ItemStatus.INACTIVE if not self.enabled else ItemStatus.INSTALLED

    def in_target_status(self) -> bool:
        """Whether the item is where its desired entry wants it (active if enabled)."""
        wanted = ItemStatus.ACTIVE if self.enabled else ItemStatus.INACTIVE
        return self.status == wanted

    def report_entry(self, desired_version: str | None) -> dict[str, Any]:
        """Return the item as a RECONCILIATION_REPORT entry (§3.5)."""
        entry: dict[str, Any] = {
            "id": self.id,
            "status": self.status.value,
            "version": self.installed_version,
            "desiredVersion": desired_version,
            "enabled": self.enabled,
            "attempts": self.attempts,
            "updatedAt": self.updated_at,
        }
        if self.owner is not None:
            entry["owner"] = self.owner
        if self.last_action is not None:
            entry["lastAction"] = self.last_action
        if self.error is not None:
            error: dict[str, Any] = {"code": self.error.code, "message": self.error.message}
            if self.error.details is not None:
                error["details"] = self.error.details
            entry["error"] = error
        if self.next_attempt_at is not None:
            entry["nextAttemptAt"] = self.next_attempt_at
        return entry
