"""The daemon's plugin socket: stale-file handling, peer check and accept loop (spec §1.3, §1.4).

Connections are accepted on a raw listening socket so the peer uid is checked before any
transport exists: a refused peer gets no byte read or written (§1.4).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
import struct
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from .connection import ConnectionSettings, Handler, IpcConnection
from .registry import DEFAULT_REQUEST_TIMEOUT_S, PluginRegistry

__all__ = [
    "MAX_SOCKET_PATH_BYTES",
    "AlreadyServing",
    "Handler",
    "IpcServer",
    "SocketPathError",
    "so_peercred_uid",
]

logger = logging.getLogger(__name__)

MAX_SOCKET_PATH_BYTES: Final = 100
_PROBE_TIMEOUT_S: Final = 1.0
_SOCKET_MODE: Final = 0o600
_BACKLOG: Final = 64
_UCRED: Final = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}
_SOL_LOCAL: Final = 0  # macOS <sys/un.h>
_LOCAL_PEERCRED: Final = 1
_XUCRED_SIZE: Final = 76  # struct xucred: version, uid, ngroups, groups[16]


class AlreadyServing(RuntimeError):
    """Another process answers on the socket path (the daemon exits 3)."""


class SocketPathError(RuntimeError):
    """The socket path is unusable: not a socket, too long, or its mode would not stick."""


def so_peercred_uid(sock: socket.socket) -> int | None:
    """Return the peer's uid of a connected Unix socket, or None when it cannot be read."""
    try:
        if hasattr(socket, "SO_PEERCRED"):
            data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
            _pid, uid, _gid = _UCRED.unpack(data)
            return int(uid)
        if sys.platform == "darwin":
            data = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED_SIZE)
            version, uid = struct.unpack_from("=II", data)
            return int(uid) if version == 0 else None
    except (OSError, struct.error):
        return None
    return None


def _peer_pid(sock: socket.socket) -> int | None:
    """Return the peer's pid for logging, where the platform tells it."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        pid, _uid, _gid = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        )
    except (OSError, struct.error):
        return None
    return int(pid)


def _probe(path: Path) -> bool:
    """Return whether something accepts connections on `path` (refused or gone: False)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_PROBE_TIMEOUT_S)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except TimeoutError:
        # A full backlog, not a dead socket: never unlink what was not shown stale.
        return True
    finally:
        probe.close()
    return True


def _clear_stale(path: Path) -> None:
    """Remove a stale socket at `path` after probing it; refuse anything else (§1.3 step 3)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketPathError(f"{path} exists and is not a socket; refusing to remove it")
    if _probe(path):
        raise AlreadyServing(f"another process is serving {path}")
    logger.info("removing stale socket %s", path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _bind(path: Path) -> tuple[socket.socket, tuple[int, int]]:
    """Bind and verify the socket at `path`; return it and its (device, inode) (§1.3 step 4)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # The umask is process-wide; it is 0177 only for the bind call itself.
        previous = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(previous)
        os.chmod(path, _SOCKET_MODE)
        st = os.stat(path)
        if stat.S_IMODE(st.st_mode) != _SOCKET_MODE:
            raise SocketPathError(f"{path} has mode {stat.S_IMODE(st.st_mode):o}, not 600")
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, (st.st_dev, st.st_ino)


class IpcServer:
    """Serve plugin IPC on a Unix socket."""

    def __init__(
        self,
        socket_path: Path,
        *,
        daemon_id: str,
        daemon_version: str,
        handlers: Mapping[str, Handler] | None = None,
        registry: PluginRegistry | None = None,
        peer_uid_reader: Callable[[socket.socket], int | None] = so_peercred_uid,
        clock: Callable[[], float] = time.time,
        cloud_connected: Callable[[], bool] = lambda: False,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
        register_timeout_s: float = 10.0,
        ping_interval_s: float = 30.0,
        ping_timeout_s: float = 10.0,
    ) -> None:
        self.socket_path = socket_path
        self.registry = registry if registry is not None else PluginRegistry()
        self._peer_uid_reader = peer_uid_reader
        self._settings = ConnectionSettings(
            daemon_id=daemon_id,
            daemon_version=daemon_version,
            registry=self.registry,
            handlers=dict(handlers or {}),
            clock=clock,
            cloud_connected=cloud_connected,
            request_timeout_s=request_timeout_s,
            register_timeout_s=register_timeout_s,
            ping_interval_s=ping_interval_s,
            ping_timeout_s=ping_timeout_s,
        )
        self._listener: socket.socket | None = None
        self._inode: tuple[int, int] | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._connections: set[IpcConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def serving(self) -> bool:
        """Whether the server accepts connections."""
        return self._accept_task is not None and not self._accept_task.done()

    async def start(self, spawn: Callable[..., asyncio.Task[Any]] = asyncio.create_task) -> None:
        """Clear a stale socket, bind with mode 0600 and start accepting.

        Args:
            spawn: Starts the accept loop; the gateway passes its task group's.

        Raises:
            AlreadyServing: another process answered the probe.
            SocketPathError: the path is not a socket, is too long, or the mode is wrong.
        """
        if len(os.fsencode(self.socket_path)) > MAX_SOCKET_PATH_BYTES:
            raise SocketPathError(
                f"socket path {self.socket_path} exceeds {MAX_SOCKET_PATH_BYTES} bytes; "
                "use a shorter CLAWGATE_HOME"
            )
        await asyncio.to_thread(_clear_stale, self.socket_path)
        self._stopping = False
        self._listener, self._inode = _bind(self.socket_path)
        self._accept_task = spawn(self._accept_loop(self._listener), name="ipc-accept")
        logger.info("plugin IPC listening on %s", self.socket_path)

    async def stop(self, *, reason: str = "stop", grace_ms: int = 5000) -> None:
        """Stop accepting, announce `daemon.shutdown`, wait for in-flight work, close, unlink."""
        self._stopping = True
        if self._accept_task is not None:
            self._accept_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept_task
            self._accept_task = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for session in self.registry.sessions():
            session.send_event("daemon.shutdown", {"reason": reason, "graceMs": grace_ms})
        await self._wait_for_work(grace_ms / 1000)
        for connection in list(self._connections):
            connection.disconnect("daemon stopping")
        tasks = list(self._tasks)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._unlink_own_socket()

    async def _wait_for_work(self, timeout_s: float) -> None:
        work = [future for c in self._connections for future in c.in_flight()]
        if work:
            await asyncio.wait(work, timeout=timeout_s)

    def _unlink_own_socket(self) -> None:
        if self._inode is None:
            return
        try:
            st = os.lstat(self.socket_path)
        except FileNotFoundError:
            return
        if (st.st_dev, st.st_ino) == self._inode:
            os.unlink(self.socket_path)
        else:
            logger.warning("%s was replaced by another file; leaving it", self.socket_path)
        self._inode = None

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _address = await loop.sock_accept(listener)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    logger.error("accept failed: %s; pausing", exc)
                    await asyncio.sleep(0.5)
                    continue
                raise
            if not self._peer_allowed(conn):
                conn.close()
                continue
            # Held here until done: the loop keeps only weak references to tasks.
            task = asyncio.create_task(self._serve(conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _peer_allowed(self, conn: socket.socket) -> bool:
        uid = self._peer_uid_reader(conn)
        if uid is not None and uid == os.geteuid():
            return True
        logger.warning(
            "refused IPC peer uid=%s pid=%s (daemon euid %d)", uid, _peer_pid(conn), os.geteuid()
        )
        return False

    async def _serve(self, conn: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_unix_connection(sock=conn)
        except OSError:
            conn.close()
            return
        connection = IpcConnection(self._settings, reader, writer)
        if self._stopping:
            # Accepted just before stop(): it must not outlive the server.
            connection.close()
        self._connections.add(connection)
        try:
            await connection.serve()
        except Exception:
            connection.log.exception("connection failed")
        finally:
            self._connections.discard(connection)

    def connection_count(self) -> int:
        """Return how many connections are open."""
        return len(self._connections)
