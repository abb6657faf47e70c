"""A real Synapse homeserver for the Matrix tests: a subprocess on loopback, SQLite, a temp dir.

`Synapse(workdir).start()` writes a minimal homeserver.yaml (no federation, no presence,
rate limits raised so tests and the bench are not throttled, shared-secret registration),
starts `python -m synapse.app.homeserver` and waits until the client API answers. Start-up
takes several seconds, so the tests share one server per session (`synapse` fixture in
`conftest.py`) and register fresh users per test (`register`), which keeps them apart.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MatrixAccount", "Synapse", "free_port"]

SERVER_NAME = "localhost"
#: Start-up imports a lot; on a loaded 2-core machine it can take a while.
START_TIMEOUT_S = 180.0
_LIMIT = {"per_second": 10_000, "burst_count": 10_000}


def free_port() -> int:
    """Return a loopback TCP port that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True, slots=True)
class MatrixAccount:
    """A registered user: id, password and an access token of its own device."""

    user_id: str
    password: str
    access_token: str
    device_id: str

    @property
    def localpart(self) -> str:
        """The part of the user id between `@` and `:`."""
        return self.user_id[1:].split(":", 1)[0]


class Synapse:
    """One homeserver process; restartable on the same port and data."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.shared_secret = secrets.token_hex(16)
        self._process: subprocess.Popen[bytes] | None = None
        self._users = 0

    @property
    def url(self) -> str:
        """The homeserver's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the homeserver's output goes (read it when a test fails)."""
        return self.workdir / "synapse.log"

    def _write_config(self) -> Path:
        from signedjson.key import generate_signing_key, write_signing_keys

        work = self.workdir
        key = work / "signing.key"
        if not key.exists():
            with key.open("w") as out:
                write_signing_keys(out, [generate_signing_key("a_test")])
        log_config = work / "log.yaml"
        log_config.write_text(
            json.dumps(
                {
                    "version": 1,
                    "formatters": {"plain": {"format": "%(asctime)s %(name)s %(message)s"}},
                    "handlers": {
                        "out": {"class": "logging.StreamHandler", "formatter": "plain"},
                    },
                    "root": {"level": "WARNING", "handlers": ["out"]},
                    "disable_existing_loggers": False,
                }
            )
        )
        config: dict[str, Any] = {
            "server_name": SERVER_NAME,
            "public_baseurl": f"{self.url}/",
            "pid_file": str(work / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(work / "homeserver.db")}},
            "log_config": str(log_config),
            "media_store_path": str(work / "media"),
            "signing_key_path": str(key),
            "registration_shared_secret": self.shared_secret,
            "enable_registration": False,
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "presence": {"enabled": False},
            "enable_metrics": False,
            "url_preview_enabled": False,
            "rc_message": _LIMIT,
            "rc_login": {"address": _LIMIT, "account": _LIMIT, "failed_attempts": _LIMIT},
            "rc_joins": {"local": _LIMIT, "remote": _LIMIT},
            "rc_joins_per_room": _LIMIT,
            "rc_invites": {"per_room": _LIMIT, "per_user": _LIMIT, "per_issuer": _LIMIT},
            "rc_registration": _LIMIT,
            "rc_admin_redaction": _LIMIT,
            "rc_media_create": _LIMIT,
        }
        path = work / "homeserver.yaml"
        path.write_text(json.dumps(config, indent=1))  # YAML is a superset of JSON
        return path

    def start(self) -> None:
        """Start the homeserver and wait until its client API answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        log = self.log_path.open("ab")
        env = {**os.environ, "SYNAPSE_CACHE_FACTOR": "0.5"}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(config)],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"synapse exited at start-up; see {self.log_path}")
            versions = f"{self.url}/_matrix/client/versions"
            with contextlib.suppress(OSError), urllib.request.urlopen(versions, timeout=5):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"synapse did not answer within {START_TIMEOUT_S:g} s")

    def stop(self) -> None:
        """Stop the homeserver (SIGTERM, then SIGKILL) and wait for it."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def register(self, prefix: str, *, admin: bool = False) -> MatrixAccount:
        """Register a fresh user through the shared-secret admin API."""
        self._users += 1
        username = f"{prefix}{self._users}{secrets.token_hex(3)}"
        password = secrets.token_urlsafe(12)
        nonce = self._request("GET", "/_synapse/admin/v1/register")["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, username, password, "admin" if admin else "notadmin"):
            mac.update(part.encode())
            if part not in ("admin", "notadmin"):
                mac.update(b"\x00")
        answer = self._request(
            "POST",
            "/_synapse/admin/v1/register",
            {
                "nonce": nonce,
                "username": username,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            },
        )
        return MatrixAccount(
            answer["user_id"], password, answer["access_token"], answer["device_id"]
        )
