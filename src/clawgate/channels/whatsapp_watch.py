"""When a WhatsApp Web session is healthy, when to rebuild it and when to give up (pure).

whatsmeow (under neonize) reconnects a dropped socket by itself, so a short disconnect is
waited out. The adapter feeds each session event in with the time, and asks `verdict(now)`
once a second:

- `OK`: connected, or linking, or reconnecting within `reconnect_grace_s`;
- `RESTART`: disconnected for longer than that, or never linked within `link_timeout_s`
  after the first QR code — the supervisor rebuilds the client with backoff and jitter;
- `FAIL` with a reason: the session is gone for good until someone acts (logged out from
  the phone, replaced by another client, banned, client outdated, linking abandoned) — the
  account stops with that one status line and is not retried (no storm against WhatsApp).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["LinkWatch", "Verdict", "WatchPolicy"]

LOGIN_HINT: Final = "run `clawgate channels login whatsapp` and scan the QR code"


class Verdict(StrEnum):
    """What the adapter should do with its session now."""

    OK = "ok"
    RESTART = "restart"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class WatchPolicy:
    """How long to wait for whatsmeow's own reconnect, and for a QR code to be scanned."""

    reconnect_grace_s: float = 60.0
    link_timeout_s: float = 180.0


class LinkWatch:
    """The session's state, fed by events; time is always passed in (monotonic seconds)."""

    def __init__(self, policy: WatchPolicy, now: float) -> None:
        self._policy = policy
        self.connected = False
        self.linking_since: float | None = None
        self.down_since: float | None = now
        self.failure: str | None = None

    def qr_shown(self, now: float) -> None:
        """The session is not linked: a QR code waits to be scanned."""
        if self.linking_since is None:
            self.linking_since = now

    def up(self) -> None:
        """Connected (after linking, at start, or after a reconnect)."""
        self.connected = True
        self.linking_since = self.down_since = None

    def down(self, now: float) -> None:
        """The socket dropped; whatsmeow is reconnecting."""
        if self.connected or self.down_since is None:
            self.down_since = now
        self.connected = False

    def logged_out(self) -> None:
        """The phone removed this linked device (or WhatsApp did)."""
        self._fail(f"WhatsApp logged this device out; {LOGIN_HINT}")

    def replaced(self) -> None:
        """Another client opened the same session and took it over."""
        self._fail(
            "another WhatsApp Web client took over this session; close it, then"
            " `clawgate channels login whatsapp`"
        )

    def banned(self, code: int, expires_s: int) -> None:
        """WhatsApp banned the number for a while."""
        self._fail(f"WhatsApp banned this number temporarily (code {code}, {expires_s} s left)")

    def outdated(self) -> None:
        """WhatsApp refuses this client version."""
        self._fail("WhatsApp refuses this client version; upgrade: pip install -U neonize")

    def connect_failed(self, reason: int, message: str) -> None:
        """WhatsApp refused the connection (logged out, banned, bad session...)."""
        detail = f": {message}" if message else ""
        self._fail(f"WhatsApp refused the connection (reason {reason}{detail}); {LOGIN_HINT}")

    def verdict(self, now: float) -> Verdict:
        """What to do now (see the module docstring)."""
        if self.failure is not None:
            return Verdict.FAIL
        if self.connected:
            return Verdict.OK
        if self.linking_since is not None:
            if now - self.linking_since > self._policy.link_timeout_s:
                self._fail(f"no QR code was scanned in time; {LOGIN_HINT}")
                return Verdict.FAIL
            return Verdict.OK
        if self.down_since is not None and now - self.down_since > self._policy.reconnect_grace_s:
            return Verdict.RESTART
        return Verdict.OK

    def _fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self.connected = False
