"""Closed exec approvals, pure: the record kept when one closes, its wire shape, the cursor.

`approval.history` (OpenClaw 2026.9.6) lists closed approvals newest first, by
`(resolvedAtMs, id)` descending; a page's `nextCursor` names the last row it returned, and
the next page starts strictly after it, so rows closed meanwhile never shift a page.

Each outcome maps onto OpenClaw's terminal states:
- `allow-once` / `allow-always` by an operator: `allowed`, reason `user`;
- `deny` by an operator: `denied`, reason `user`;
- `expired` (nobody answered in time): `expired`, reason `timeout`;
- `cancelled` (the `system.run` caller went away first): `cancelled`, reason `run-aborted`.

Nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Final
from urllib.parse import quote

from .exec_approvals import APPROVAL_DECISIONS, command_text
from .limits import APPROVAL_HISTORY_COMMAND_MAX_CHARS, APPROVAL_HISTORY_CURSOR_MAX_CHARS

__all__ = [
    "BY_GATEWAY",
    "ApprovalOutcome",
    "ClosedApproval",
    "HistoryCursor",
    "InvalidCursorError",
    "Resolver",
    "ResolverKind",
    "history_command",
]


class ApprovalOutcome(StrEnum):
    """How an exec approval closed."""

    ALLOW_ONCE = "allow-once"
    ALLOW_ALWAYS = "allow-always"
    DENY = "deny"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ResolverKind(StrEnum):
    """Who closed it, in OpenClaw's terms: a paired device, a client without one, the gateway."""

    DEVICE = "device"
    RUNTIME = "runtime"
    SYSTEM = "system"


def history_command(argv: Sequence[str]) -> str:
    """Return the command line a history row keeps: argv as one line, cut to the limit."""
    text = command_text(argv)
    if len(text) <= APPROVAL_HISTORY_COMMAND_MAX_CHARS:
        return text
    return text[: APPROVAL_HISTORY_COMMAND_MAX_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class Resolver:
    """Who closed an approval: a device id, a client id, or the gateway itself (no id)."""

    kind: ResolverKind
    id: str | None = None


#: An approval the gateway closed (it expired, or its caller left).
BY_GATEWAY: Final = Resolver(ResolverKind.SYSTEM)

# outcome -> (OpenClaw status, terminal reason, decision or None)
_TERMINAL: Final[dict[ApprovalOutcome, tuple[str, str, str | None]]] = {
    ApprovalOutcome.ALLOW_ONCE: ("allowed", "user", "allow-once"),
    ApprovalOutcome.ALLOW_ALWAYS: ("allowed", "user", "allow-always"),
    ApprovalOutcome.DENY: ("denied", "user", "deny"),
    ApprovalOutcome.EXPIRED: ("expired", "timeout", None),
    ApprovalOutcome.CANCELLED: ("cancelled", "run-aborted", None),
}


@dataclass(frozen=True, slots=True)
class ClosedApproval:
    """One exec approval after it closed: what was asked, on which node, and the outcome."""

    id: str
    node_id: str
    command: str
    requested_by: str
    outcome: ApprovalOutcome
    resolver_kind: ResolverKind
    resolver_id: str | None
    resolved_by: str | None
    created_at_ms: int
    expires_at_ms: int
    resolved_at_ms: int

    def record(self) -> dict[str, Any]:
        """Return the stored JSON form."""
        return asdict(self)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> ClosedApproval:
        """Rebuild from `record()`'s form."""
        return cls(
            **{
                **data,
                "outcome": ApprovalOutcome(data["outcome"]),
                "resolver_kind": ResolverKind(data["resolver_kind"]),
            }
        )

    def snapshot(self, base_path: str) -> dict[str, Any]:
        """Return OpenClaw's terminal approval snapshot (a closed shape: no extra member).

        Args:
            base_path: where the Control UI is served (its `/approve/<id>` route).
        """
        status, reason, decision = _TERMINAL[self.outcome]
        resolver: dict[str, Any] = {"kind": self.resolver_kind.value}
        if self.resolver_id:
            resolver["id"] = self.resolver_id
        item: dict[str, Any] = {
            "id": self.id,
            "status": status,
            "presentation": {
                "kind": "exec",
                "commandText": self.command or "(empty)",
                "host": "node",
                "nodeId": self.node_id,
                "allowedDecisions": list(APPROVAL_DECISIONS),
            },
            "urlPath": f"{base_path}/approve/{quote(self.id, safe='')}",
            "createdAtMs": self.created_at_ms,
            "expiresAtMs": self.expires_at_ms,
            "resolvedAtMs": self.resolved_at_ms,
            "source": {},
            "resolver": resolver,
            "reason": reason,
        }
        if decision is not None:
            item["decision"] = decision
        return item


class InvalidCursorError(ValueError):
    """A history cursor this gateway did not issue."""


@dataclass(frozen=True, slots=True)
class HistoryCursor:
    """The last row of a page: the next page starts after `(resolved_at_ms, id)`."""

    resolved_at_ms: int
    id: str

    def encode(self) -> str:
        """Return the opaque token (OpenClaw's form: base64url of `{v, resolvedAtMs, id}`)."""
        body = json.dumps(
            {"v": 1, "resolvedAtMs": self.resolved_at_ms, "id": self.id}, separators=(",", ":")
        )
        return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> HistoryCursor:
        """Read a token `encode` returned, exactly as it was returned.

        Raises:
            InvalidCursorError: anything else (padded, rewritten, extended, too long).
        """
        try:
            if len(token) > APPROVAL_HISTORY_CURSOR_MAX_CHARS:
                raise ValueError("too long")
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            data = json.loads(raw)
            cursor = cls(resolved_at_ms=data["resolvedAtMs"], id=data["id"])
            valid = (
                set(data) == {"v", "resolvedAtMs", "id"}
                and data["v"] == 1
                and type(cursor.resolved_at_ms) is int
                and cursor.resolved_at_ms >= 0
                and isinstance(cursor.id, str)
                and cursor.id != ""
            )
        except (ValueError, TypeError, KeyError, binascii.Error) as exc:
            raise InvalidCursorError(token) from exc
        if not valid or cursor.encode() != token:
            raise InvalidCursorError(token)
        return cursor
