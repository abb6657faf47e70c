"""Real PostgreSQL and nats-server processes for the hub's scale-out tests and bench.

Each server runs from a temp dir on a free loopback port, started and stopped by pid (never
by name). PostgreSQL's ``initdb`` and ``postgres`` refuse to run as root: when the tests run
as root (as CI does), both run as the ``postgres`` system user that Debian's ``postgresql``
package creates, through ``setpriv`` (which execs, so the pid we hold is the server's), in a
directory handed to that user. As anyone else they run as the current user.

``missing_servers()`` says what is not installed; the fixtures skip with that reason, loudly
(``make test`` installs both packages, so a skip there means the install failed).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

__all__ = ["NatsServer", "PostgresServer", "free_port", "missing_servers"]

PG_USER: Final = "clawgate"
_START_TIMEOUT_S: Final = 30.0


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def missing_servers() -> list[str]:
    """Return what cannot run here: 'postgresql' and/or 'nats-server'."""
    missing = []
    if _pg_bin() is None:
        missing.append("postgresql")
    elif os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing.append("postgresql (no 'postgres' user to run it as, since we are root)")
    if shutil.which("nats-server") is None:
        missing.append("nats-server")
    return missing


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {_START_TIMEOUT_S:g} s")


class _Process:
    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port()

    def kill(self) -> None:
        """SIGKILL the server and every process it started (a crash of its machine).

        Killing only PostgreSQL's postmaster would leave its backends serving the open
        connections for a moment (and holding the shared memory a restart needs).
        """
        if self.proc is None or self.proc.poll() is not None:
            return
        group = self.proc.pid  # started in a session of its own: the group is the server
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)

    #: The signal of a clean stop that does not wait for clients to leave.
    stop_signal = signal.SIGTERM

    def terminate(self) -> None:
        """Stop the server cleanly."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class PostgresServer(_Process):
    """A throwaway PostgreSQL cluster; ``url(db)`` for asyncpg, one database per test."""

    # SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client to leave.
    stop_signal = signal.SIGINT

    def __init__(self, *, durable: bool = False) -> None:
        """Prepare a cluster; ``durable`` keeps fsync on (the bench), else it is off."""
        super().__init__()
        bin_dir = _pg_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian package postgresql)")
        self.bin = bin_dir
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="clawgate-pg-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = [
                "setpriv",
                f"--reuid={user.pw_uid}",
                f"--regid={user.pw_gid}",
                "--clear-groups",
            ]
        self._initdb()

    def _initdb(self) -> None:
        subprocess.run(
            [
                *self._as,
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                PG_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            cwd=self.root,
        )

    def start(self) -> None:
        """Start (or restart) the server on its port."""
        options = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.root}",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=64MB",
        ]
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        self.proc = subprocess.Popen(
            [
                *self._as,
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                *options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "postgres.log", "ab"),  # noqa: SIM115
            cwd=self.root,
            start_new_session=True,
        )
        _wait_port(self.port, self.proc, "postgres")
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            result = subprocess.run(
                [
                    str(self.bin / "pg_isready"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    PG_USER,
                    "-d",
                    "postgres",
                ],
                capture_output=True,
            )
            if result.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("postgres did not become ready")

    def url(self, database: str = "postgres") -> str:
        """Return the URL of ``database`` on this server."""
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create ``name`` and return its URL."""
        subprocess.run(
            [
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                PG_USER,
                "-d",
                "postgres",
                "-q",
                "-c",
                f'CREATE DATABASE "{name}"',
            ],
            check=True,
            capture_output=True,
        )
        return self.url(name)

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        self.terminate()
        shutil.rmtree(self.root, ignore_errors=True)


class NatsServer(_Process):
    """A nats-server on a free loopback port."""

    def __init__(self) -> None:
        """Prepare a server; ``start`` runs it."""
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="clawgate-nats-"))

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart) the server on its port."""
        self.proc = subprocess.Popen(
            ["nats-server", "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "nats.log", "ab"),  # noqa: SIM115
            cwd=self.root,
            start_new_session=True,
        )
        _wait_port(self.port, self.proc, "nats-server")

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        self.terminate()
        shutil.rmtree(self.root, ignore_errors=True)
