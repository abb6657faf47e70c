"""What a method handler gets besides its params."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..protocol.scopes import ADMIN, Role, scope_satisfied

if TYPE_CHECKING:
    from .connection import Connection
    from .server import GatewayServer

__all__ = ["CallContext"]


@dataclass(frozen=True, slots=True)
class CallContext:
    """The gateway, the calling connection and the request id of one call."""

    gateway: GatewayServer
    connection: Connection
    request_id: str

    @property
    def role(self) -> Role:
        """The caller's role."""
        return self.connection.role

    @property
    def protocol(self) -> int:
        """The caller's negotiated protocol version."""
        return self.connection.protocol

    @property
    def is_admin(self) -> bool:
        """Whether the caller holds `operator.admin`."""
        return self.connection.role is Role.OPERATOR and scope_satisfied(
            self.connection.scopes, ADMIN
        )
