"""Event gates: which connections receive which broadcast event (spec §8.9)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .scopes import APPROVALS, PAIRING, READ, Role, scope_satisfied

__all__ = ["EventGate", "EventSpec", "admits"]


class EventGate(Enum):
    """Who may receive a broadcast event."""

    ALL = "all"
    OPERATORS = "operators"
    READ = "read"
    PAIRING = "pairing"
    APPROVALS = "approvals"


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One event the server can emit: its payload model and who may receive it."""

    name: str
    payload: Any
    gate: EventGate | None  # None: targeted, carries no seq


def admits(gate: EventGate, role: Role, scopes: Iterable[str]) -> bool:
    """Return whether a connection with `role` and `scopes` passes `gate`."""
    if gate is EventGate.ALL:
        return True
    if role is not Role.OPERATOR:
        return False
    if gate is EventGate.OPERATORS:
        return True
    return scope_satisfied(scopes, _GATE_SCOPES[gate])


_GATE_SCOPES = {
    EventGate.READ: READ,
    EventGate.PAIRING: PAIRING,
    EventGate.APPROVALS: APPROVALS,
}
