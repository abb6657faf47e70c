"""A connection as the services see it: who is on the other end (a structural type)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..protocol.connect import ClientInfo
from ..protocol.scopes import Role

__all__ = ["Peer"]


class Peer(Protocol):
    """An authenticated connection's identity; `Connection` is the one implementation."""

    @property
    def conn_id(self) -> str: ...
    @property
    def role(self) -> Role: ...
    @property
    def scopes(self) -> Sequence[str]: ...
    @property
    def protocol(self) -> int: ...
    @property
    def client(self) -> ClientInfo | None: ...
    @property
    def device_id(self) -> str | None: ...
    @property
    def remote_ip(self) -> str: ...
    @property
    def reached_host(self) -> str | None:
        """The `Host` header the client sent: how it reached us, for URLs handed back."""
