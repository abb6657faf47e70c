"""What a method handler gets besides its params: the caller and the gateway's services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..protocol.scopes import ADMIN, Role, scope_satisfied
from .peer import Peer

if TYPE_CHECKING:
    from .services import Services

__all__ = ["CallContext", "Caller"]


class Caller(Peer, Protocol):
    """The connection a request came from, as handlers see it."""

    def respond(self, request_id: str, payload: Any) -> None:
        """Send a first answer now; the handler goes on (`agent` answers twice)."""

    def close_after_answer(self, code: int, reason: str) -> None:
        """Close the connection once the answer to this request is queued."""


@dataclass(frozen=True, slots=True)
class CallContext:
    """The caller, the request id and the services of one call."""

    caller: Caller
    request_id: str
    services: Services

    @property
    def role(self) -> Role:
        """The caller's role."""
        return self.caller.role

    @property
    def protocol(self) -> int:
        """The caller's negotiated protocol version."""
        return self.caller.protocol

    @property
    def is_admin(self) -> bool:
        """Whether the caller holds `operator.admin`."""
        return self.caller.role is Role.OPERATOR and scope_satisfied(self.caller.scopes, ADMIN)
