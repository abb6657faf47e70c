"""Plugin IPC: the daemon's Unix-socket server for local plugins (spec §2)."""

from __future__ import annotations

from ..protocol.ipc.frames import IpcError
from .registry import DEFAULT_TIMEOUTS_S, PluginRegistry, PluginSession
from .server import AlreadyServing, Handler, IpcServer, SocketPathError, so_peercred_uid

__all__ = [
    "DEFAULT_TIMEOUTS_S",
    "AlreadyServing",
    "Handler",
    "IpcError",
    "IpcServer",
    "PluginRegistry",
    "PluginSession",
    "SocketPathError",
    "so_peercred_uid",
]
