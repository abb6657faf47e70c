"""Roles, scopes and the method authorization rules (spec §7)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Final

from .detail_codes import MISSING_SCOPE
from .errors import Forbidden, InvalidRequest

__all__ = [
    "ADMIN",
    "APPROVALS",
    "OPERATOR_SCOPES",
    "PAIRING",
    "QUESTIONS",
    "READ",
    "TALK",
    "TALK_SECRETS",
    "WRITE",
    "MethodRole",
    "Refusal",
    "Role",
    "RoleRefused",
    "ScopeRefused",
    "authorize",
    "effective_scopes",
    "scope_satisfied",
]

READ: Final = "operator.read"
WRITE: Final = "operator.write"
ADMIN: Final = "operator.admin"
APPROVALS: Final = "operator.approvals"
PAIRING: Final = "operator.pairing"
TALK_SECRETS: Final = "operator.talk.secrets"
TALK: Final = "operator.talk"
QUESTIONS: Final = "operator.questions"

OPERATOR_SCOPES: Final = (READ, WRITE, ADMIN, APPROVALS, PAIRING, TALK_SECRETS, TALK, QUESTIONS)
_KNOWN: Final = frozenset(OPERATOR_SCOPES)
# What `operator.write` implies besides itself; `operator.admin` implies everything.
_WRITE_IMPLIES: Final = frozenset({READ, TALK})


class Role(StrEnum):
    """The role a connection authenticated as."""

    OPERATOR = "operator"
    NODE = "node"


class MethodRole(StrEnum):
    """Which role a method is declared for."""

    ANY = "any"
    OPERATOR = "operator"
    NODE = "node"


class Refusal:
    """Marker for role and scope refusals, which the flood guard counts."""


class RoleRefused(InvalidRequest, Refusal):
    """The connection's role may not call the method."""


class ScopeRefused(Forbidden, Refusal):
    """The connection lacks the method's scope."""


def scope_satisfied(held: Iterable[str], required: str) -> bool:
    """Return whether the `held` scopes satisfy `required` under the implication rules."""
    held_set = set(held)
    if ADMIN in held_set or required in held_set:
        return True
    return WRITE in held_set and required in _WRITE_IMPLIES


def effective_scopes(role: Role, requested: Sequence[str]) -> tuple[str, ...]:
    """Return the scopes a connection holds: requested ones, de-duplicated, unknown dropped."""
    kept: dict[str, None] = {}
    for scope in requested:
        if (role is Role.OPERATOR and scope in _KNOWN) or (
            role is Role.NODE and scope.startswith("node.")
        ):
            kept[scope] = None
    return tuple(kept)


def authorize(
    *, role: Role, scopes: Iterable[str], method_role: MethodRole, method_scope: str | None
) -> None:
    """Check one call against its method's declaration, default-deny.

    Raises:
        RoleRefused: the role may not call the method.
        ScopeRefused: the scope is missing; an operator method without a scope needs admin.
    """
    if method_role is MethodRole.ANY:
        return
    if method_role is MethodRole.NODE:
        if role is not Role.NODE:
            raise RoleRefused(f"unauthorized role: {role.value}")
        return
    if role is not Role.OPERATOR:
        raise RoleRefused(f"unauthorized role: {role.value}")
    required = method_scope or ADMIN
    if not scope_satisfied(scopes, required):
        raise ScopeRefused(
            f"missing scope: {required}",
            details={
                "code": MISSING_SCOPE,
                "missingScope": required,
                "requiredScopes": [required],
            },
        )
