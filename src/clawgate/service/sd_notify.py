"""systemd's readiness protocol (sd_notify(3)) for a `Type=notify` unit, without libsystemd.

systemd passes `NOTIFY_SOCKET` (a unix datagram socket path, or an abstract name written
with a leading `@`) and, with `WatchdogSec=`, `WATCHDOG_USEC` (and `WATCHDOG_PID`, the pid
meant to ping). The gateway sends `READY=1` once `/readyz` answers 200, `WATCHDOG=1` every
half watchdog period, and `STOPPING=1` when it begins to shut down. Without `NOTIFY_SOCKET`
(a terminal, launchd, `gateway start`) nothing is sent.

The parsing below is pure; `SdNotifier` is the thin socket shell.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Final

__all__ = [
    "READY",
    "STOPPING",
    "WATCHDOG",
    "SdNotifier",
    "notify_address",
    "status_message",
    "watchdog_interval_s",
]

logger = logging.getLogger(__name__)

READY: Final = "READY=1"
STOPPING: Final = "STOPPING=1"
WATCHDOG: Final = "WATCHDOG=1"


def notify_address(environ: Mapping[str, str]) -> str | None:
    """Return the address to send to: a path, or an abstract name starting with NUL.

    None when `NOTIFY_SOCKET` is unset, empty, or neither absolute nor abstract (sd_notify
    ignores such values too).
    """
    value = environ.get("NOTIFY_SOCKET", "")
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_interval_s(environ: Mapping[str, str], pid: int) -> float | None:
    """Return how often to send `WATCHDOG=1` (half of `WATCHDOG_USEC`), or None for never.

    As sd_watchdog_enabled(3): a `WATCHDOG_PID` naming another process means the watchdog
    is not ours; a missing, zero or malformed `WATCHDOG_USEC` means there is none.
    """
    watchdog_pid = environ.get("WATCHDOG_PID")
    if watchdog_pid is not None and watchdog_pid.strip() != str(pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


def status_message(*fields: str, status: str | None = None) -> bytes:
    """Join `fields` (e.g. READY) and an optional one-line STATUS= into one datagram."""
    lines = list(fields)
    if status is not None:
        lines.append("STATUS=" + " ".join(status.split()))
    return "\n".join(lines).encode("utf-8")


class SdNotifier:
    """Sends datagrams to systemd's notify socket; does nothing when there is none."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        """Read `NOTIFY_SOCKET` and `WATCHDOG_*` from `environ` (default: this process's)."""
        env = os.environ if environ is None else environ
        self.address = notify_address(env)
        self.watchdog_s = watchdog_interval_s(env, os.getpid()) if self.address else None

    @property
    def enabled(self) -> bool:
        """Whether a notify socket was given."""
        return self.address is not None

    def send(self, *fields: str, status: str | None = None) -> None:
        """Send one message; a failure is logged, never raised (systemd is optional)."""
        if self.address is None:
            return
        message = status_message(*fields, status=status)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            logger.warning("sd_notify %s failed: %s", fields[0] if fields else "", exc)
