"""A real ngircd on loopback for the IRC channel's tests, and a human's raw IRC client.

`Ngircd` writes a config into its own directory (a plain port, a TLS port with a freshly
generated self-signed certificate, optionally a server password), runs Debian's `ngircd`
in the foreground and stops it at the end. `make test` installs the package when missing.
`Human` is a few lines of IRC over asyncio streams: register, join, say, and collect what
arrives, so the tests read exactly what a person's client would show.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from clawgate.tls import ensure_self_signed

__all__ = ["NGIRCD", "Human", "Line", "Ngircd"]

NGIRCD = shutil.which("ngircd") or "/usr/sbin/ngircd"
SERVER_NAME = "irc.test.local"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Ngircd:
    """One ngircd process on free loopback ports (plain and TLS)."""

    def __init__(
        self, workdir: Path, *, password: str | None = None, penalties: bool = True
    ) -> None:
        if not Path(NGIRCD).exists():
            raise RuntimeError("ngircd is not installed; `make test` installs it (apt ngircd)")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o755)  # ngircd drops to `nobody` when started as root
        self.port = _free_port()
        self.tls_port = _free_port()
        self.password = password
        material = ensure_self_signed(self.dir / "tls")
        self.ca_file = str(material.cert_path)
        self._config = self.dir / "ngircd.conf"
        password_line = f"Password = {password}\n" if password else ""
        # ngircd slows a client that sends many lines (about 2 a second after a burst).
        penalty_line = "" if penalties else "MaxPenaltyTime = 0\n"
        self._config.write_text(
            "[Global]\n"
            f"Name = {SERVER_NAME}\n"
            "Info = clawgate test server\n"
            "AdminInfo1 = clawgate tests\nAdminInfo2 = loopback\nAdminEMail = none@invalid\n"
            "Listen = 127.0.0.1\n"
            f"Ports = {self.port}\n"
            "MotdPhrase = clawgate test server\n"
            f"{password_line}"
            "[Limits]\n"
            "MaxConnectionsIP = 0\nMaxNickLength = 30\nMaxJoins = 0\n"
            "PingTimeout = 120\nPongTimeout = 20\n"
            f"{penalty_line}"
            "[Options]\n"
            "PAM = no\nIdent = no\nDNS = no\n"
            "[SSL]\n"
            f"CertFile = {material.cert_path}\nKeyFile = {material.key_path}\n"
            f"Ports = {self.tls_port}\n"
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._log = self.dir / "ngircd.log"

    def start(self) -> None:
        """Start the server and wait until both ports accept connections."""
        log = self._log.open("ab")
        self._process = subprocess.Popen(
            [NGIRCD, "--nodaemon", "--config", str(self._config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + 30
        while not (_accepting(self.port) and _accepting(self.tls_port)):
            if self._process.poll() is not None:
                raise RuntimeError(f"ngircd exited: {self._log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("ngircd did not start listening within 30 s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (every client connection drops) and wait for it to exit."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        while _accepting(self.port):  # the listening socket goes with the process
            time.sleep(0.05)

    def accepted(self) -> int:
        """Return how many connections the server accepted so far (from its log)."""
        return self._log.read_text(errors="replace").count("Accepted connection")

    def pause(self) -> None:
        """Freeze the server: connections stay open but nothing is answered (half-open)."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again."""
        assert self._process is not None
        self._process.send_signal(signal.SIGCONT)


@dataclass(frozen=True, slots=True)
class Line:
    """A PRIVMSG or NOTICE the human received."""

    command: str
    sender: str
    target: str
    text: str


class Human:
    """A person's IRC client: registers a nick, joins channels, says things, reads replies."""

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.received: list[Line] = []
        self.raw: list[str] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._joined: set[str] = set()
        self._new = asyncio.Event()

    async def connect(self, port: int, password: str | None = None) -> Human:
        """Connect and register; return once the server welcomed us."""
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        if password:
            self.send(f"PASS {password}")
        self.send(f"NICK {self.nick}")
        self.send(f"USER {self.nick} 0 * :{self.nick}")
        async with asyncio.timeout(20):
            while True:
                line = (await self._reader.readline()).decode("utf-8", "replace")
                if not line:
                    raise ConnectionError(f"the server closed {self.nick}'s connection")
                if " 001 " in line:
                    break
        self._task = asyncio.create_task(self._read())
        return self

    def send(self, line: str) -> None:
        """Send one raw line."""
        assert self._writer is not None
        self._writer.write(line.encode() + b"\r\n")

    def send_bytes(self, data: bytes) -> None:
        """Send raw bytes as they are."""
        assert self._writer is not None
        self._writer.write(data)

    def say(self, target: str, text: str) -> None:
        """PRIVMSG `target`."""
        self.send(f"PRIVMSG {target} :{text}")

    async def join(self, channel: str) -> None:
        """Join a channel and wait until the server confirmed it."""
        self.send(f"JOIN {channel}")
        await self.wait(lambda: channel.lower() in self._joined)

    async def wait_member(self, channel: str, nick: str) -> None:
        """Wait until `nick` is in `channel` (asking the server with NAMES)."""

        def listed() -> bool:
            return any(
                " 353 " in raw and f" {channel.lower()} " in raw.lower() and nick in raw
                for raw in self.raw
            )

        async with asyncio.timeout(20):
            while not listed():
                self.send(f"NAMES {channel}")
                with contextlib.suppress(TimeoutError):
                    await self.wait(listed, timeout=0.5)

    async def _read(self) -> None:
        assert self._reader is not None
        while True:
            raw = await self._reader.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.raw.append(line)
            words = line.split(" ", 3)
            if words[0] == "PING":
                self.send("PONG " + line[5:])
            elif len(words) >= 3 and words[1] == "JOIN" and words[0][1:].startswith(self.nick):
                self._joined.add(words[2].lstrip(":").lower())
            elif len(words) == 4 and words[1] in ("PRIVMSG", "NOTICE"):
                sender = words[0][1:].split("!", 1)[0]
                text = words[3][1:] if words[3].startswith(":") else words[3]
                self.received.append(Line(words[1], sender, words[2], text))
            self._new.set()

    def messages(self, sender: str, containing: str = "", target: str | None = None) -> list[Line]:
        """Return the PRIVMSGs from `sender` (to `target`) that contain `containing`."""
        return [
            line
            for line in self.received
            if line.command == "PRIVMSG"
            and line.sender.lower() == sender.lower()
            and containing in line.text
            and (target is None or line.target.lower() == target.lower())
        ]

    async def wait(self, check: object, timeout: float = 20.0) -> object:
        """Wait until `check()` returns something truthy; return it."""
        assert callable(check)
        async with asyncio.timeout(timeout):
            while not (value := check()):
                self._new.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await self._new.wait()
            return value

    async def close(self) -> None:
        """Quit and close the connection."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self.send("QUIT :bye")
                await self._writer.drain()
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
