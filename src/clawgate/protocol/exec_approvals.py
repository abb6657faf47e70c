"""Exec approvals, pure: per-node `system.run` policies and the pending approval book.

A policy is one of four modes:
- `deny`: nothing runs;
- `allowlist`: only argv matching an allowlist pattern runs, the rest is refused;
- `ask` (the default): allowlisted argv runs, anything else waits for an operator holding
  `operator.approvals` (allow once, allow always, deny); unanswered, it expires as denied;
- `full`: everything the command policy lets through runs.

A pattern is an argv list of shell-style globs (`fnmatch`, case-sensitive); a last element
`**` matches any remaining arguments. `allow-always` adds the exact argv, with glob
characters escaped, so it matches that argv and nothing else.

Nothing here reads a clock or touches a socket.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum, StrEnum
from fnmatch import fnmatchcase
from typing import Any, Final

__all__ = [
    "APPROVAL_DECISIONS",
    "ApprovalBook",
    "ExecDecision",
    "ExecMode",
    "ExecPolicy",
    "ExecRequest",
    "exact_pattern",
    "pattern_matches",
]

#: What an approver may answer (OpenClaw's decisions).
APPROVAL_DECISIONS: Final = ("allow-once", "allow-always", "deny")
#: A last pattern element that matches any remaining arguments.
REST: Final = "**"
#: The most allowlist patterns one node keeps.
MAX_ALLOWLIST: Final = 1024


class ExecMode(StrEnum):
    """How a node's `system.run` requests are decided."""

    DENY = "deny"
    ALLOWLIST = "allowlist"
    ASK = "ask"
    FULL = "full"


class ExecDecision(Enum):
    """The policy's answer for one argv."""

    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"


def _escape(arg: str) -> str:
    """Escape fnmatch's special characters so `arg` matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in arg)


def exact_pattern(argv: Sequence[str]) -> tuple[str, ...]:
    """Return the pattern that matches exactly `argv` (what `allow-always` stores)."""
    return tuple(_escape(arg) if arg != REST else "[*][*]" for arg in argv)


def pattern_matches(pattern: Sequence[str], argv: Sequence[str]) -> bool:
    """Return whether an argv pattern matches `argv`."""
    if pattern and pattern[-1] == REST:
        head = pattern[:-1]
        return len(argv) >= len(head) and all(
            fnmatchcase(arg, glob) for glob, arg in zip(head, argv, strict=False)
        )
    return len(pattern) == len(argv) and all(
        fnmatchcase(arg, glob) for glob, arg in zip(pattern, argv, strict=True)
    )


@dataclass(frozen=True, slots=True)
class ExecPolicy:
    """One node's exec approval policy."""

    mode: ExecMode = ExecMode.ASK
    allowlist: tuple[tuple[str, ...], ...] = ()
    updated_at_ms: int | None = None

    def decide(self, argv: Sequence[str]) -> ExecDecision:
        """Return whether `argv` runs, is refused, or waits for an operator."""
        if self.mode is ExecMode.FULL:
            return ExecDecision.ALLOW
        if self.mode is ExecMode.DENY or not argv:
            return ExecDecision.DENY
        if any(pattern_matches(pattern, argv) for pattern in self.allowlist):
            return ExecDecision.ALLOW
        return ExecDecision.ASK if self.mode is ExecMode.ASK else ExecDecision.DENY

    def allowing(self, argv: Sequence[str], now_ms: int) -> ExecPolicy:
        """Return the policy with `argv`'s exact pattern added to the allowlist."""
        pattern = exact_pattern(argv)
        if pattern in self.allowlist:
            return self
        allowlist = (*self.allowlist, pattern)[-MAX_ALLOWLIST:]
        return replace(self, allowlist=allowlist, updated_at_ms=now_ms)

    def payload(self) -> dict[str, Any]:
        """Return the wire shape: `{mode, allowlist: [[glob, ...], ...], updatedAtMs?}`."""
        entry: dict[str, Any] = {
            "mode": self.mode.value,
            "allowlist": [list(p) for p in self.allowlist],
        }
        if self.updated_at_ms is not None:
            entry["updatedAtMs"] = self.updated_at_ms
        return entry


def command_text(argv: Sequence[str]) -> str:
    """Return argv as one line for people to read (not for a shell)."""
    return " ".join(arg if arg and " " not in arg else repr(arg) for arg in argv)


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """A `system.run` waiting for an operator's decision."""

    id: str
    node_id: str
    argv: tuple[str, ...]
    cwd: str | None
    requested_by: str
    created_at_ms: int
    expires_at_ms: int

    def payload(self) -> dict[str, Any]:
        """Return the `exec.approval.requested` payload (clawgate's fields and OpenClaw's)."""
        text = command_text(self.argv)
        return {
            "approvalKind": "exec",
            "id": self.id,
            "nodeId": self.node_id,
            "argv": list(self.argv),
            "cwd": self.cwd,
            "requestedBy": self.requested_by,
            "request": {
                "command": text,
                "commandArgv": list(self.argv),
                "cwd": self.cwd,
                "nodeId": self.node_id,
                "host": "node",
            },
            "createdAtMs": self.created_at_ms,
            "expiresAtMs": self.expires_at_ms,
        }


@dataclass(slots=True)
class ApprovalBook:
    """Pending exec approval requests, oldest first."""

    ttl_ms: int
    ids: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))
    pending: OrderedDict[str, ExecRequest] = field(default_factory=OrderedDict)

    def open(
        self,
        node_id: str,
        argv: Sequence[str],
        cwd: str | None,
        requested_by: str,
        now_ms: int,
    ) -> ExecRequest:
        """Record a request that waits for a decision until `now + ttl`."""
        request = ExecRequest(
            id=self.ids(),
            node_id=node_id,
            argv=tuple(argv),
            cwd=cwd,
            requested_by=requested_by,
            created_at_ms=now_ms,
            expires_at_ms=now_ms + self.ttl_ms,
        )
        self.pending[request.id] = request
        return request

    def resolve(self, request_id: str) -> ExecRequest:
        """Take a request out of the book to apply a decision.

        Raises:
            KeyError: unknown, expired or already resolved.
        """
        return self.pending.pop(request_id)

    def expired(self, now_ms: int) -> list[ExecRequest]:
        """Take out and return the requests whose deadline passed."""
        lapsed = [r for r in self.pending.values() if r.expires_at_ms <= now_ms]
        for request in lapsed:
            del self.pending[request.id]
        return lapsed
